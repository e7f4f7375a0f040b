import type { FastifyInstance } from 'fastify';
import { sendError } from '../../common/http-app.js';
import { contentTypeFor } from '../../common/mime.js';
import { parseObjectPath } from '../../common/paths.js';
import { PLAY_QUERY_PARAM, parsePlayId } from '../../common/play-id.js';
import { signQuery } from '../../common/signing.js';
import { TRACE_QUERY_PARAM, childTraceparent, requestTraceparent } from '../../common/trace.js';
import { OriginUnavailableError } from '../catalog.js';
import { renderMpd } from '../dash-rewrite.js';
import { isMultivariant, rewriteMedia, rewriteMultivariant } from '../hls-rewrite.js';
import { manifestCmsdDynamic } from '../isp-duress.js';
import { ManifestRewriteError } from '../manifest-paths.js';
import { steeringManifestUrl } from '../steer-manifest.js';
import { type SteeringRouteContext, countDecision, prepare, rawRest } from './context.js';
import { signedPath } from './decision-state.js';

/**
 * GET /v1/play/{title}/{manifest}: the manifest rewritten for this client — its edges as
 * pathways (HLS multivariant, DASH MPD), or one edge's signed URLs (HLS media playlist).
 */
export function registerPlayRoutes(app: FastifyInstance, ctx: SteeringRouteContext): void {
  const { catalog, clock, logger, metrics, playGate, mpdCache, state } = ctx;
  const count = (isp: string | undefined, outcome: string) => countDecision(ctx, 'play', isp, outcome);

  app.get('/v1/play/*', async (req, reply) => {
    const topo = state.topology;
    const parsed = parseObjectPath(rawRest(req, '/v1/play/'));
    if (!parsed.ok) {
      count(undefined, 'bad_request');
      return sendError(reply, 400, parsed.reason);
    }
    const { title, file } = parsed;
    const isHls = file.endsWith('.m3u8');
    if (!isHls && !file.endsWith('.mpd')) {
      count(undefined, 'bad_request');
      return sendError(reply, 400, 'only .m3u8 and .mpd manifests are played through steering; use /v1/locate for media');
    }
    const d = await prepare(ctx, req, reply, topo, 'play', title, file);
    if (!d) return reply;
    let text: string;
    let digest: string;
    try {
      ({ text, digest } = await catalog.manifestVersion(title, file));
    } catch (err) {
      count(d.isp, 'origin_error');
      logger.warn({ title, file, err: (err as Error).message }, 'manifest unavailable');
      return sendError(reply, err instanceof OriginUnavailableError ? 502 : 500, 'manifest unavailable from the origin');
    }
    const q = req.query as Record<string, string | undefined>;
    const pathway = typeof q.pathway === 'string' ? q.pathway : undefined;
    const multivariant = isHls && isMultivariant(text);
    // A multivariant playlist, an MPD, or a media playlist asked for directly starts a play.
    const topLevel = !isHls || multivariant || pathway === undefined;
    // One trace per play: a child of the player's traceparent (header, or `tp` from our own
    // multivariant playlist), carried in every URL we emit because players drop headers.
    const traceparent = childTraceparent(requestTraceparent(req.headers, req.url));
    // The play id rides along with the trace: a new one per play start, else the one our
    // multivariant playlist put in this media playlist's URL.
    const playId = topLevel
      ? playGate.issue({ title, isp: d.isp ?? 'none', client: d.client, at: clock.now() }, clock.monotonic())
      : parsePlayId(q[PLAY_QUERY_PARAM]);
    const tp = `&${TRACE_QUERY_PARAM}=${traceparent}${playId ? `&${PLAY_QUERY_PARAM}=${playId}` : ''}`;
    const publicUrl = ctx.publicUrl();
    const steeringUri = steeringManifestUrl(publicUrl, title);
    let body: string | Buffer;
    try {
      if (multivariant) {
        body = rewriteMultivariant(text, {
          manifest: file,
          pathways: d.edges.map((e) => e.id),
          steeringUri,
          mediaPlaylistUrl: (f, p) => `${publicUrl}/v1/play/${title}/${f}?pathway=${encodeURIComponent(p)}${tp}`,
          fileUrl: (f) => `${state.edgeFileUrl(topo, d.edges[0]!, title, f)}${tp}`,
        });
      } else if (isHls) {
        // The requested pathway while it is healthy, else the best edge now.
        const edge = (pathway !== undefined ? d.edges.find((e) => e.id === pathway) : undefined) ?? d.edges[0]!;
        body = rewriteMedia(text, { manifest: file, fileUrl: (f) => `${state.edgeFileUrl(topo, edge, title, f)}${tp}` });
      } else {
        const { keys, activeKey, ttlSeconds } = topo.signing;
        // Keyed by the signing tag too: a key whose secret a reload changed keeps its id.
        const keyId = `${activeKey}/${topo.signingTag}`;
        const signed = await mpdCache.signed({ title, file, digest }, keyId, Math.floor(clock.now() / 1000), async () => text, (f, sec) =>
          signQuery(keys, activeKey, signedPath(title, f), sec, ttlSeconds),
        );
        body = renderMpd(signed, { edges: d.edges, steeringUri, query: tp });
      }
    } catch (err) {
      if (!(err instanceof ManifestRewriteError)) throw err;
      count(d.isp, 'origin_error');
      logger.error({ title, file, err: err.message }, 'manifest cannot be rewritten');
      return sendError(reply, 502, `manifest cannot be served: ${err.message}`);
    }
    if (topLevel) {
      // Counted for the fill plan only once an edge serves this play's media (playGate).
      metrics.playStarts.inc({ title, isp: d.isp ?? 'none' });
      logger.info({ reqId: req.id, title, file, isp: d.isp ?? null, edge: d.edges[0]!.id, traceparent, playId }, 'play');
    }
    count(d.isp, 'ok');
    return reply
      .header('traceparent', traceparent)
      .header('content-type', contentTypeFor(file))
      .header('cache-control', 'no-store')
      .header('x-steering-edge', d.edges[0]!.id)
      .header('cmsd-dynamic', manifestCmsdDynamic(d.isp, state.ispsDegraded))
      .send(body);
  });
}
