/* ReelCDN demo player: lists the catalog, plays a title through steering (/v1/play/...) with
 * hls.js or dash.js, and shows where every segment came from (edge, status, X-Cache).
 * Query parameters (for links and tests): title, manifest, autoplay=1, buffer=SECONDS. */
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const bufferSec = Number(params.get('buffer')) > 0 ? Number(params.get('buffer')) : undefined;

  /** Everything the page saw, readable by tests as window.reel. */
  const state = {
    engine: null,
    title: null,
    manifest: null,
    requests: [],
    errors: [],
    warnings: [],
    ranking: [],
    edgesByOrigin: {},
    currentEdge: null,
    player: null,
    /** The CMCD session of the current play (CTA-5004 sid and cid), sent by both players as a CMCD= query key. */
    cmcd: null,
  };
  window.reel = state;

  /**
   * A new CMCD session id per play. crypto.randomUUID exists only in secure contexts (https,
   * localhost); a demo opened over plain http on another host gets a UUID from getRandomValues.
   */
  function newSessionId() {
    if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  const rawFetch = window.fetch.bind(window);
  /** dash.js error codes for a media / init segment that could not be downloaded (DOWNLOAD_ERROR_ID_CONTENT / _INITIALIZATION). */
  const DASH_SEGMENT_DOWNLOAD_ERROR = 27;
  const DASH_INIT_DOWNLOAD_ERROR = 28;
  const kindOf = (url) => {
    const p = url.pathname;
    if (p.startsWith('/c/')) return 'media';
    if (p.startsWith('/v1/steer/')) return 'steering';
    if (p.startsWith('/v1/play/')) return 'manifest';
    return 'other';
  };
  const fileOf = (url) => decodeURIComponent(url.pathname.split('/').slice(3).join('/'));

  function record(r) {
    const url = new URL(r.url, location.href);
    const entry = {
      at: Date.now(),
      videoTime: $('video').currentTime,
      kind: kindOf(url),
      url: url.href,
      origin: url.origin,
      file: url.pathname.startsWith('/c/') ? fileOf(url) : url.pathname,
      method: r.method,
      range: r.range ?? null,
      status: r.status,
      xCache: r.xCache ?? null,
      bytes: r.bytes ?? 0,
      ms: Math.round(r.ms),
    };
    state.requests.push(entry);
    if (entry.kind === 'media') {
      if (entry.status >= 200 && entry.status < 300) state.currentEdge = entry.origin;
      renderRow(entry);
      renderFacts();
    }
  }

  // Every request the players make goes through XHR or fetch: wrap both to see the answers.
  const xo = XMLHttpRequest.prototype.open;
  const xh = XMLHttpRequest.prototype.setRequestHeader;
  const xs = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this.__reel = { method, url: String(url), range: null, t0: 0 };
    return xo.call(this, method, url, ...rest);
  };
  XMLHttpRequest.prototype.setRequestHeader = function (name, value) {
    if (this.__reel && name.toLowerCase() === 'range') this.__reel.range = value;
    return xh.call(this, name, value);
  };
  XMLHttpRequest.prototype.send = function (body) {
    const info = this.__reel;
    if (info) {
      info.t0 = performance.now();
      this.addEventListener('loadend', () => {
        const ok = this.status !== 0;
        const len = ok ? Number(this.getResponseHeader('content-length') ?? NaN) : 0;
        let bytes = Number.isFinite(len) ? len : 0;
        if (!bytes && ok && this.response instanceof ArrayBuffer) bytes = this.response.byteLength;
        record({ ...info, status: this.status, xCache: ok ? this.getResponseHeader('x-cache') : null, bytes, ms: performance.now() - info.t0 });
      });
    }
    return xs.call(this, body);
  };
  window.fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    const info = { method: init?.method ?? (input instanceof Request ? input.method : 'GET'), url, range: headers.get('range'), t0: performance.now() };
    try {
      const res = await rawFetch(input, init);
      const len = Number(res.headers.get('content-length') ?? NaN);
      record({ ...info, status: res.status, xCache: res.headers.get('x-cache'), bytes: Number.isFinite(len) ? len : 0, ms: performance.now() - info.t0 });
      return res;
    } catch (err) {
      record({ ...info, status: 0, ms: performance.now() - info.t0 });
      throw err;
    }
  };

  // ---------- rendering ----------
  const edgeName = (origin) => state.edgesByOrigin[origin] ?? new URL(origin).host;

  function renderRow(e) {
    const tbody = $('segments').tBodies[0];
    const tr = document.createElement('tr');
    const cells = [
      [new Date(e.at).toLocaleTimeString(undefined, { hour12: false }) + '.' + String(e.at % 1000).padStart(3, '0')],
      [e.file, 'file'],
      [e.range ? e.range.replace('bytes=', '') : '–'],
      [edgeName(e.origin)],
      [String(e.status || 'failed'), `s${String(e.status)[0]}`],
      [e.xCache ?? '–', e.xCache ?? ''],
      [(e.bytes / 1024).toFixed(1)],
    ];
    for (const [text, cls] of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    tr.title = e.url.split('?')[0];
    tbody.insertBefore(tr, tbody.firstChild);
    while (tbody.rows.length > 40) tbody.deleteRow(-1);
  }

  function renderFacts() {
    $('engine').textContent = state.engine ?? '–';
    $('manifest').textContent = state.title ? `/v1/play/${state.title}/${state.manifest}` : '–';
    const r = $('ranking');
    r.textContent = '';
    state.ranking.forEach((id, i) => {
      const s = document.createElement('span');
      s.className = i === 0 ? 'rank first' : 'rank';
      s.textContent = id;
      r.appendChild(s);
    });
    if (state.ranking.length === 0) r.textContent = '–';
    $('current').textContent = state.currentEdge ? `${edgeName(state.currentEdge)} (${new URL(state.currentEdge).host})` : '–';
  }

  function setStatus(text, isError = false) {
    $('status').textContent = text;
    $('status').classList.toggle('error', isError);
  }

  function fail(source, detail) {
    const msg = `${source}: ${detail}`;
    state.errors.push(msg);
    $('errors-title').hidden = false;
    const li = document.createElement('li');
    li.textContent = msg;
    $('errors').appendChild(li);
    setStatus(msg, true);
  }

  // ---------- steering view (for the panel only; the players poll steering themselves) ----------
  let steeringTimer = 0;
  async function refreshSteering() {
    if (!state.title) return;
    try {
      const [steer, located] = await Promise.all([
        rawFetch(`/v1/steer/${encodeURIComponent(state.title)}.json`, { cache: 'no-store' }).then((r) => (r.ok ? r.json() : null)),
        rawFetch(`/v1/locate/${encodeURIComponent(state.title)}/${state.manifest}`, { cache: 'no-store' }).then((r) => (r.ok ? r.json() : null)),
      ]);
      if (steer) state.ranking = steer['PATHWAY-PRIORITY'] ?? [];
      for (const u of located?.urls ?? []) state.edgesByOrigin[new URL(u.url).origin] = u.edge;
      renderFacts();
    } catch {
      // steering unreachable for a moment: keep the last view
    }
  }

  // ---------- players ----------
  function destroyPlayer() {
    if (!state.player) return;
    try {
      if (state.engine === 'hls.js') state.player.destroy();
      else state.player.reset();
    } catch {
      // already gone
    }
    state.player = null;
  }

  function playHls(video, url) {
    if (!window.Hls || !Hls.isSupported()) return fail('hls.js', 'Media Source Extensions are not available in this browser');
    // CMCD (CTA-5004) on every playlist and segment request, as a CMCD= query key: the edges count
    // sessions, startup, bitrate, buffer and starvation per ISP, and prefetch the `nor` it names.
    // Query mode needs no CORS preflight; headers (useHeaders) would add one per request.
    const cfg = { enableWorker: true, backBufferLength: 30, cmcd: { sessionId: state.cmcd.sid, contentId: state.cmcd.cid } };
    if (bufferSec) Object.assign(cfg, { maxBufferLength: bufferSec, maxMaxBufferLength: bufferSec });
    const hls = new Hls(cfg);
    state.engine = `hls.js ${Hls.version}`;
    state.player = hls;
    hls.on(Hls.Events.ERROR, (_e, data) => {
      const what = `${data.type}/${data.details}${data.frag ? ` (${data.frag.relurl ?? data.frag.url?.split('?')[0]})` : ''}`;
      if (data.fatal) fail('hls.js fatal', what);
      else state.warnings.push(`hls.js: ${what}`);
    });
    hls.on(Hls.Events.STEERING_MANIFEST_LOADED, (_e, data) => {
      state.ranking = data.steeringManifest?.['PATHWAY-PRIORITY'] ?? state.ranking;
      renderFacts();
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  function playDash(video, url) {
    if (!window.dashjs) return fail('dash.js', 'not loaded');
    const player = dashjs.MediaPlayer().create();
    state.engine = `dash.js ${player.getVersion()}`;
    state.player = player;
    // Every segment is on several edges (one BaseURL per serviceLocation): after one quick
    // retry dash.js should exclude the failing location and move on, not retry it 3 times a second apart.
    const streaming = {
      retryAttempts: { MediaSegment: 1, InitializationSegment: 1 },
      retryIntervals: { MediaSegment: 500, InitializationSegment: 500 },
      // CMCD as hls.js sends it (see playHls): query mode, this play's session and the title.
      cmcd: { enabled: true, sid: state.cmcd.sid, cid: state.cmcd.cid, mode: 'query' },
    };
    if (bufferSec) {
      streaming.buffer = { bufferTimeDefault: bufferSec, bufferTimeAtTopQuality: bufferSec, bufferTimeAtTopQualityLongForm: bufferSec, bufferToKeep: 30 };
    }
    player.updateSettings({ streaming });
    player.on(dashjs.MediaPlayer.events.ERROR, (e) => {
      const code = e.error?.code;
      const what = `${code ?? ''} ${e.error?.message ?? JSON.stringify(e.error)}`;
      // A segment that one edge could not deliver: dash.js excludes that service location and
      // fetches from the next one, so it is worth showing but playback goes on.
      if (code === DASH_SEGMENT_DOWNLOAD_ERROR || code === DASH_INIT_DOWNLOAD_ERROR) state.warnings.push(`dash.js: ${what}`);
      else fail('dash.js', what);
    });
    player.on(dashjs.MediaPlayer.events.PLAYBACK_ERROR, (e) => fail('dash.js playback', e.error?.message ?? String(e.error)));
    player.initialize(video, url, true);
  }

  function play(title, manifest) {
    destroyPlayer();
    const video = $('video');
    video.muted = true;
    Object.assign(state, { title, manifest, currentEdge: null, ranking: [], cmcd: { sid: newSessionId(), cid: title } });
    const url = `${location.origin}/v1/play/${encodeURIComponent(title)}/${manifest}`;
    history.replaceState(null, '', `?title=${encodeURIComponent(title)}&manifest=${encodeURIComponent(manifest)}${bufferSec ? `&buffer=${bufferSec}` : ''}`);
    setStatus(`Loading ${title}…`);
    if (manifest.endsWith('.mpd')) playDash(video, url);
    else playHls(video, url);
    void video.play().catch(() => {
      // the players start playback themselves once media is buffered
    });
    renderFacts();
    clearInterval(steeringTimer);
    void refreshSteering();
    steeringTimer = setInterval(refreshSteering, 2000);
  }

  const video = $('video');
  video.addEventListener('timeupdate', () => {
    $('position').textContent = `${video.currentTime.toFixed(1)} s / ${Number.isFinite(video.duration) ? video.duration.toFixed(1) : '?'} s`;
  });
  video.addEventListener('playing', () => setStatus(`Playing ${state.title} with ${state.engine}.`));
  video.addEventListener('waiting', () => state.title && setStatus(`Buffering ${state.title}…`));
  video.addEventListener('ended', () => setStatus(`${state.title} ended.`));
  video.addEventListener('error', () => video.error && fail('video element', `${video.error.code} ${video.error.message}`));

  // ---------- title list ----------
  async function loadTitles() {
    const sel = $('title');
    let titles;
    try {
      const res = await rawFetch('/v1/titles', { cache: 'no-store' });
      if (!res.ok) throw new Error(`HTTP ${res.status}: ${(await res.text()).trim()}`);
      titles = (await res.json()).titles;
    } catch (err) {
      fail('catalog', err.message);
      return;
    }
    sel.textContent = '';
    for (const t of titles) {
      for (const m of t.manifests) {
        const o = document.createElement('option');
        o.value = JSON.stringify([t.title, m.file]);
        o.textContent = `${t.title} — ${m.file} (${m.kind === 'dash' ? 'DASH' : 'HLS'})`;
        sel.appendChild(o);
      }
    }
    if (sel.options.length === 0) {
      sel.appendChild(new Option('no titles in the catalog'));
      return;
    }
    const wanted = params.get('title');
    if (wanted) {
      const value = JSON.stringify([wanted, params.get('manifest') ?? '']);
      const match = [...sel.options].find((o) => o.value === value) ?? [...sel.options].find((o) => JSON.parse(o.value)[0] === wanted);
      if (match) sel.value = match.value;
    }
    sel.disabled = false;
    $('play').disabled = false;
    state.titles = titles;
    if (params.get('autoplay') === '1' && wanted) {
      const [title, manifest] = JSON.parse(sel.value);
      play(title, manifest);
    }
  }

  $('pick').addEventListener('submit', (e) => {
    e.preventDefault();
    const [title, manifest] = JSON.parse($('title').value);
    play(title, manifest);
  });
  void loadTitles();
})();
