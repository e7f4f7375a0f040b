// ReelCDN ops dashboard: no build step, plain browser JavaScript. Reads GET /v1/dashboard
// on steering's admin port every few seconds with the admin token as a bearer header.
// The token comes from the login form or from the URL fragment (#token=...), which never
// reaches a server; it is kept in sessionStorage (this tab only) and removed from the URL.
'use strict';
(() => {
  const TOKEN_KEY = 'reelcdn-admin-token';
  const REFRESH_MS = 2000;
  const HOUR_S = 3600;
  const PALETTE = ['#58a6ff', '#3fb950', '#f0883e', '#a371f7', '#d29922', '#ff7b72', '#79c0ff', '#56d364', '#e3b341', '#bc8cff'];

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k === 'style') e.setAttribute('style', v);
      else e.setAttribute(k, v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  };

  // ---------- formatting ----------
  const pct = (v) => (v === null || v === undefined ? '—' : `${(v * 100).toFixed(1)}%`);
  const bytes = (n) => {
    if (n === null || n === undefined) return '—';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let x = n;
    while (Math.abs(x) >= 1024 && i < u.length - 1) {
      x /= 1024;
      i++;
    }
    return `${x.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
  };
  const rate = (n) => (n === null || n === undefined ? '—' : `${bytes(n)}/s`);
  const ago = (ms) => {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 90) return `${s}s`;
    if (s < 5400) return `${Math.round(s / 60)}m`;
    return `${(s / 3600).toFixed(1)}h`;
  };

  // ---------- token ----------
  function takeTokenFromFragment() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!m) return;
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  const token = () => sessionStorage.getItem(TOKEN_KEY);

  function showLogin(message) {
    stop();
    $('main').hidden = true;
    $('summary').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('token').focus();
  }

  function showMain() {
    $('login').hidden = true;
    $('main').hidden = false;
    $('summary').hidden = false;
    $('logout').hidden = false;
  }

  // ---------- data ----------
  let timer;
  let last; // last full answer (current values)
  let hist; // client-side history columns, merged from incremental answers
  let charts;

  function stop() {
    clearTimeout(timer);
    timer = undefined;
  }

  // One refresh at a time: a click (drain) asks for one now; if one is out, another follows it.
  let refreshing = false;
  let again = false;
  async function refreshNow() {
    if (refreshing) {
      again = true;
      return;
    }
    stop();
    refreshing = true;
    try {
      await refresh();
    } finally {
      refreshing = false;
    }
    if (again) {
      again = false;
      refreshNow();
    }
  }

  async function refresh() {
    const t = token();
    if (!t) return showLogin();
    const since = hist && hist.t.length ? `?since=${Math.round(hist.t[hist.t.length - 1] * 1000)}` : '';
    let res;
    try {
      res = await fetch(`/v1/dashboard${since}`, { headers: { authorization: `Bearer ${t}` }, cache: 'no-store' });
    } catch (err) {
      setLive(false, `steering unreachable (${err.message})`);
      timer = setTimeout(refreshNow, REFRESH_MS);
      return;
    }
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      return showLogin('That token was refused.');
    }
    if (!res.ok) {
      setLive(false, `steering answered HTTP ${res.status}`);
      timer = setTimeout(refreshNow, REFRESH_MS);
      return;
    }
    const data = await res.json();
    showMain();
    last = data;
    mergeHistory(data.history);
    render(data);
    setLive(true, `updated ${new Date(data.now).toLocaleTimeString()}`);
    timer = setTimeout(refreshNow, REFRESH_MS);
  }

  function setLive(ok, text) {
    $('live-dot').className = `dot ${ok ? 'ok' : 'err'}`;
    $('live-text').textContent = text;
    const banner = $('banner');
    banner.hidden = ok;
    if (!ok) banner.textContent = `${text} — showing the last answer`;
  }

  function mergeHistory(h) {
    if (!hist) {
      hist = h;
    } else if (h.t.length > 0) {
      const cat = (a, b) => a.concat(b);
      hist.t = cat(hist.t, h.t);
      hist.cluster.hitRequests = cat(hist.cluster.hitRequests, h.cluster.hitRequests);
      hist.cluster.hitBytes = cat(hist.cluster.hitBytes, h.cluster.hitBytes);
      hist.originBytesPerSec = cat(hist.originBytesPerSec, h.originBytesPerSec);
      for (const [id, s] of Object.entries(h.edges)) {
        const old = hist.edges[id];
        hist.edges[id] = old
          ? { hitRequests: cat(old.hitRequests, s.hitRequests), hitBytes: cat(old.hitBytes, s.hitBytes), bytesPerSec: cat(old.bytesPerSec, s.bytesPerSec), up: cat(old.up, s.up) }
          : s;
      }
    }
    // Keep one hour.
    const cutoff = (hist.t[hist.t.length - 1] ?? 0) - HOUR_S;
    let drop = 0;
    while (drop < hist.t.length && hist.t[drop] < cutoff) drop++;
    if (drop > 0) {
      const cut = (a) => a.slice(drop);
      hist.t = cut(hist.t);
      hist.cluster.hitRequests = cut(hist.cluster.hitRequests);
      hist.cluster.hitBytes = cut(hist.cluster.hitBytes);
      hist.originBytesPerSec = cut(hist.originBytesPerSec);
      for (const s of Object.values(hist.edges)) for (const k of Object.keys(s)) s[k] = cut(s[k]);
    }
  }

  // ---------- rendering ----------
  function split(tiers, key) {
    if (!tiers) return el('span', { class: 'nums', text: '—' });
    const m = tiers['HIT-MEM'][key];
    const d = tiers['HIT-DISK'][key];
    // Joined another request's upstream fetch: a hit that neither tier served yet.
    const f = tiers['HIT-FILL'] ? tiers['HIT-FILL'][key] : 0;
    const x = tiers.MISS[key];
    const all = m + d + f + x;
    const w = (v) => (all === 0 ? 0 : (v / all) * 100).toFixed(2);
    const fmt = key === 'bytes' ? bytes : String;
    return el(
      'div',
      { 'data-field': `split-${key}`, 'data-mem': String(m), 'data-disk': String(d), 'data-fill': String(f), 'data-miss': String(x) },
      el('div', { class: 'split', title: `memory ${fmt(m)}, disk ${fmt(d)}, joined fetch ${fmt(f)}, miss ${fmt(x)}` },
        el('i', { class: 'mem', style: `width:${w(m)}%` }),
        el('i', { class: 'disk', style: `width:${w(d)}%` }),
        el('i', { class: 'fill', style: `width:${w(f)}%` }),
        el('i', { class: 'miss', style: `width:${w(x)}%` })),
      el('span', { class: 'nums', text: `${fmt(m)} / ${fmt(d)} / ${fmt(f)} / ${fmt(x)}` }),
    );
  }

  const ratioCell = (field, v) => el('td', { 'data-field': field, 'data-value': v === null || v === undefined ? '' : String(v), text: pct(v) });

  function usage(u) {
    if (!u) return el('span', { class: 'nums', text: '—' });
    const r = u.capacityBytes > 0 ? u.usedBytes / u.capacityBytes : 0;
    return el('div', {},
      el('div', { class: 'bar' }, el('i', { style: `width:${(Math.min(1, r) * 100).toFixed(1)}%` })),
      el('span', { class: 'nums', text: `${bytes(u.usedBytes)} of ${bytes(u.capacityBytes)} (${pct(r)})` }));
  }

  function fillCell(f, now) {
    if (!f) return el('span', { class: 'nums', text: '—' });
    const r = f.bytesTotal > 0 ? f.bytesDone / f.bytesTotal : f.filesTotal > 0 ? f.filesDone / f.filesTotal : 1;
    const next = Date.parse(f.nextWindowStart);
    const when = f.windowOpen ? 'window open now' : Number.isFinite(next) ? `next window ${new Date(next).toLocaleString()} (in ${ago(next - now)})` : '';
    return el('div', { 'data-field': 'fill', 'data-value': String(r) },
      el('div', { class: 'bar' }, el('i', { style: `width:${(r * 100).toFixed(1)}%` })),
      el('span', { class: 'nums', text: `${f.state} · ${f.filesDone}/${f.filesTotal} files · ${bytes(f.bytesDone)} of ${bytes(f.bytesTotal)}` }),
      el('span', { class: 'reason', text: when }));
  }

  // ---------- QoE (CMCD) ----------
  const ms = (v) => (v === null || v === undefined ? '—' : v >= 15000 ? '≥ 15.0 s' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`);
  const kbps = (v) => (v === null || v === undefined ? '—' : v >= 1000 ? `${(v / 1000).toFixed(2)} Mbit/s` : `${Math.round(v)} kbit/s`);
  const secs = (v) => (v === null || v === undefined ? '—' : `${(v / 1000).toFixed(1)} s`);
  const num = (field, v, text) => el('td', { 'data-field': field, 'data-value': v === null || v === undefined ? '' : String(v), text });

  function qoeCells(q) {
    if (!q) return [el('td', { colspan: '7', class: 'nums', 'data-field': 'no-data', text: 'no CMCD data' })];
    return [
      num('sessions', q.sessions, String(q.sessions)),
      num('startup-p50', q.startupP50Ms, ms(q.startupP50Ms)),
      num('startup-p90', q.startupP90Ms, ms(q.startupP90Ms)),
      num('rebuffer', q.rebufferRatio, pct(q.rebufferRatio)),
      num('bitrate', q.avgBitrateKbps, kbps(q.avgBitrateKbps)),
      num('buffer', q.avgBufferMs, secs(q.avgBufferMs)),
      num('requests', q.requests, `${q.requests} (${q.mediaRequests})`),
    ];
  }

  function renderQoe(qoe) {
    if (!qoe) return; // a steering from before the QoE panel
    $('qoe-isps').tBodies[0].replaceChildren(...qoe.isps.map((i) =>
      el('tr', { 'data-qoe-isp': i.id }, el('td', {}, el('strong', { text: i.id }), el('span', { class: 'reason', text: i.edges.join(', ') })), ...qoeCells(i.qoe))));
    $('qoe-edges').tBodies[0].replaceChildren(...qoe.edges.map((e) =>
      el('tr', { 'data-qoe-edge': e.id }, el('td', {}, el('strong', { text: e.id }), el('span', { class: 'reason', text: e.isp })), ...qoeCells(e.qoe))));
  }

  function render(d) {
    document.querySelector('[data-field="cluster-hit-requests"]').textContent = pct(d.cluster.hitRatio.requests);
    document.querySelector('[data-field="cluster-hit-bytes"]').textContent = pct(d.cluster.hitRatio.bytes);
    document.querySelector('[data-field="cluster-up"]').textContent = `${d.cluster.eligible} / ${d.cluster.edges}`;
    document.querySelector('[data-field="origin-egress"]').textContent = d.origin.reachable ? rate(d.origin.bytesPerSec ?? 0) : 'unreachable';
    document.querySelector('[data-field="origin-served"]').textContent = d.origin.reachable ? bytes(d.origin.bytesServed) : '—';

    const isps = $('isps').tBodies[0];
    isps.replaceChildren(...d.isps.map((i) =>
      el('tr', { 'data-isp': i.id },
        el('td', { text: i.id }),
        el('td', { 'data-field': 'up', text: `${i.up} / ${i.edges.length}` }),
        ratioCell('hit-requests', i.hitRatio.requests),
        ratioCell('hit-bytes', i.hitRatio.bytes),
        el('td', {}, split(i.tiers, 'requests')),
        el('td', {}, split(i.tiers, 'bytes')))));

    const edges = $('edges').tBodies[0];
    edges.replaceChildren(...d.edges.map((e) => {
      const r = e.report;
      return el('tr', { 'data-edge': e.id, 'data-state': e.state, class: e.stale ? 'stale' : '' },
        el('td', {}, el('strong', { text: e.id }), el('span', { class: 'reason', text: e.isp })),
        el('td', { class: 'state-cell' },
          el('span', { class: `badge ${e.state}`, 'data-field': 'state', text: e.state }),
          el('span', { class: 'reason', 'data-field': 'reason', 'data-kind': e.reasonKind, text: `${e.reason} · for ${ago(d.now - e.since)}` })),
        ratioCell('hit-requests', e.hitRatio.requests),
        ratioCell('hit-bytes', e.hitRatio.bytes),
        el('td', {}, split(e.tiers, 'requests')),
        el('td', {}, split(e.tiers, 'bytes')),
        el('td', { 'data-field': 'connections', text: r ? String(r.connections) : '—' }),
        el('td', { 'data-field': 'throughput', text: r ? rate(r.bytesPerSec) : '—' },
          el('span', { class: 'reason', text: r ? `${(r.requestsPerSec ?? 0).toFixed(1)} req/s, ${pct(r.errorRatio)} errors` : '' })),
        el('td', {}, usage(r && r.memory)),
        el('td', {}, usage(r && r.disk)),
        el('td', {}, fillCell(r && r.fill, d.now)),
        el('td', {}, drainButton(e)));
    }));

    renderQoe(d.qoe);

    const titles = $('titles').tBodies[0];
    titles.replaceChildren(...(d.topTitles.length === 0
      ? [el('tr', {}, el('td', { colspan: '4', class: 'nums', text: 'no plays yet' }))]
      : d.topTitles.map((t, i) =>
          el('tr', { 'data-title': t.title },
            el('td', { text: String(i + 1) }),
            el('td', { text: t.title }),
            el('td', { 'data-field': 'plays', text: String(t.plays) }),
            el('td', { class: 'nums', text: Object.entries(t.byIsp).map(([k, v]) => `${k} ${v}`).join(', ') })))));

    drawCharts(d);
  }

  function drawCharts(d) {
    if (typeof uPlot === 'undefined' || !hist) return;
    const ids = d.edges.map((e) => e.id);
    const width = (id) => Math.max(300, $(id).clientWidth - 16);
    if (!charts) {
      const color = (i) => PALETTE[i % PALETTE.length];
      const axes = (fmt) => [{ stroke: '#8b9aa8', grid: { stroke: '#263241' } }, { stroke: '#8b9aa8', grid: { stroke: '#263241' }, size: 84, values: (_u, v) => v.map(fmt) }];
      const hits = new uPlot(
        {
          width: width('chart-hits'),
          height: 240,
          scales: { y: { range: [0, 1] } },
          axes: axes((v) => `${Math.round(v * 100)}%`),
          series: [{}, { label: 'cluster', stroke: '#dbe3ea', width: 2, dash: [4, 4], spanGaps: false, value: (_u, v) => pct(v) },
            ...ids.map((id, i) => ({ label: id, stroke: color(i), width: 1.5, value: (_u, v) => pct(v) }))],
        },
        [[]].concat([[]], ids.map(() => [])),
        $('chart-hits'),
      );
      const thr = new uPlot(
        {
          width: width('chart-bytes'),
          height: 240,
          axes: axes((v) => rate(v)),
          series: [{}, { label: 'origin egress', stroke: '#ff7b72', width: 2, value: (_u, v) => rate(v) },
            ...ids.map((id, i) => ({ label: id, stroke: color(i), width: 1.5, value: (_u, v) => rate(v) }))],
        },
        [[]].concat([[]], ids.map(() => [])),
        $('chart-bytes'),
      );
      charts = { hits, thr, ids };
      window.addEventListener('resize', () => {
        charts.hits.setSize({ width: width('chart-hits'), height: 240 });
        charts.thr.setSize({ width: width('chart-bytes'), height: 240 });
      });
    }
    const col = (id, k) => (hist.edges[id] ? hist.edges[id][k] : hist.t.map(() => null));
    charts.hits.setData([hist.t, hist.cluster.hitRequests, ...charts.ids.map((id) => col(id, 'hitRequests'))]);
    charts.thr.setData([hist.t, hist.originBytesPerSec, ...charts.ids.map((id) => col(id, 'bytesPerSec'))]);
  }

  // ---------- drain / undrain ----------
  // Draining: the edge says so in its /health (steering's reason), or its last report did.
  const isDrained = (e) => e.reason === 'draining' || (e.report && e.report.status === 'draining');

  function drainButton(e) {
    const drained = isDrained(e);
    const b = el('button', {
      type: 'button',
      class: drained ? 'op undrain' : 'op drain',
      'data-action': drained ? 'undrain' : 'drain',
      title: drained ? 'Let steering send new sessions to this edge again' : 'Send no new sessions to this edge; it keeps serving the ones it has',
      text: drained ? 'Undrain' : 'Drain',
    });
    b.addEventListener('click', () => void drainEdge(e.id, !drained, b));
    return b;
  }

  async function drainEdge(id, on, button) {
    button.disabled = true;
    $('ops-error').hidden = true;
    let res;
    try {
      res = await fetch(on ? '/v1/drain' : '/v1/undrain', {
        method: 'POST',
        headers: { authorization: `Bearer ${token()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id }),
        cache: 'no-store',
      });
    } catch (err) {
      res = undefined;
      $('ops-error').textContent = `steering cannot be reached: ${err.message}`;
    }
    if (res && res.status === 401) return showLogin('That token was refused.');
    if (res && !res.ok) $('ops-error').textContent = (await res.text()).trim();
    $('ops-error').hidden = !!(res && res.ok);
    // Show steering's new view at once rather than at the next refresh.
    refreshNow();
  }

  // ---------- explain ----------
  async function explainClient(ev) {
    ev.preventDefault();
    const q = new URLSearchParams({ ip: $('explain-ip').value.trim(), title: $('explain-title').value.trim() });
    const xff = $('explain-xff').value.trim();
    if (xff) q.set('xff', xff);
    $('explain-error').hidden = true;
    let res;
    try {
      res = await fetch(`/v1/explain?${q}`, { headers: { authorization: `Bearer ${token()}` }, cache: 'no-store' });
    } catch (err) {
      $('explain-error').textContent = `steering cannot be reached: ${err.message}`;
      $('explain-error').hidden = false;
      return;
    }
    if (res.status === 401) return showLogin('That token was refused.');
    if (!res.ok) {
      $('explain-error').textContent = (await res.text()).trim();
      $('explain-error').hidden = false;
      $('explain-result').hidden = true;
      return;
    }
    const e = await res.json();
    $('explain-client').textContent = `${e.client.note}. ${e.isp.note}. Bound: ${e.balanceFactor}× the ISP mean.`;
    const rows = [...e.edges].sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9));
    $('explain-edges').querySelector('tbody').replaceChildren(
      ...rows.map((x) => {
        const load = !x.load ? '—' : x.load.metric === 'none' ? 'idle' : `${x.load.ratio.toFixed(2)} (${x.load.metric === 'connections' ? 'connections' : 'bytes/s'})${x.load.over ? ' over' : ''}`;
        return el(
          'tr',
          { class: x.rank === null ? 'stale' : '' },
          el('td', { text: x.rank === null ? '—' : String(x.rank) }),
          el('td', { text: x.id }),
          el('td', { text: x.ownIsp ? x.isp : `${x.isp} (overflow)` }),
          el('td', { text: String(x.ringPosition) }),
          el('td', { class: 'state-cell' }, el('span', { class: `badge ${x.health.state}`, text: x.health.state }), el('span', { class: 'reason', text: x.health.reason })),
          el('td', { text: x.holder ? 'yes' : 'no' }),
          el('td', { text: load }),
          el('td', { text: x.why }),
        );
      }),
    );
    $('explain-result').hidden = false;
  }

  // ---------- wiring ----------
  document.addEventListener('DOMContentLoaded', () => {
    takeTokenFromFragment();
    $('explain-form').addEventListener('submit', (ev) => void explainClient(ev));
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = $('token').value.trim();
      if (!v) return;
      sessionStorage.setItem(TOKEN_KEY, v);
      $('token').value = '';
      hist = undefined;
      refreshNow();
    });
    $('logout').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin();
    });
    window.addEventListener('hashchange', () => {
      if (/token=/.test(location.hash)) {
        takeTokenFromFragment();
        refreshNow();
      }
    });
    if (token()) refreshNow();
    else showLogin();
  });
  // For tests and the curious: the last answer.
  Object.defineProperty(window, 'reelcdnDashboard', { get: () => last });
})();
