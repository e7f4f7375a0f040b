import type { FastifyInstance } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import type { Clock } from '../common/clock.js';
import { sendError } from '../common/http-app.js';
import type { Logger } from '../common/logger.js';
import { MAX_REPORT_BODY, REPORT_PATH, REPORT_SIGNATURE_HEADER, reportSignatureValid } from '../common/serve-report-wire.js';
import { REPORT_REFUSALS, type ReportRefusal, checkServeReport, parseServeReport } from './file-weights.js';
import type { ServedStore } from './served-store.js';

/**
 * `POST /v1/served` on the origin's admin port: an edge's serve report (file-weights.ts). Who
 * may send one: the admin port's bearer token lets a caller in (operators, steering and edges
 * hold it), and the report must also carry a MAC of its exact bytes under one of the cluster's
 * `signing.keys` bound to its `edgeId` — what edges hold to sign their requests to the origin,
 * and players never do. A report then has to name an edge of the cluster file, be fresh and
 * new, and hold numbers an edge could have served; any other is refused and counted
 * (`reelcdn_origin_serve_reports_total{outcome}`), and logged with its reason.
 */

export type ReportOutcome = 'accepted' | 'malformed' | ReportRefusal;

export interface ServeReportDeps {
  store: () => ServedStore | undefined;
  /** The cluster file's signing keys, now (a reload may change them). */
  keys: () => Record<string, string>;
  isEdge: (edgeId: string) => boolean;
  fileSize: (title: string, file: string) => number | undefined;
  clock: Clock;
  registry: Registry;
  logger: Logger;
}

const STATUS: Record<ReportRefusal, number> = {
  'bad signature': 403,
  'unknown edge': 403,
  stale: 403,
  replayed: 409,
  'impossible numbers': 422,
};

/** Registers the route (inside its own plugin: it reads the body as bytes, to check their MAC). */
export function registerServeReportRoute(adminApp: FastifyInstance, deps: ServeReportDeps): Counter<'outcome'> {
  const reports = new Counter({
    name: 'reelcdn_origin_serve_reports_total',
    help: "Edges' serve reports (per-file weights) by outcome: accepted, or why refused",
    labelNames: ['outcome'],
    registers: [deps.registry],
  });
  for (const outcome of ['accepted', 'malformed', ...REPORT_REFUSALS]) reports.inc({ outcome }, 0);

  adminApp.register(async (app) => {
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: MAX_REPORT_BODY }, (_req, body, done) => done(null, body));
    app.post(REPORT_PATH, async (req, reply) => {
      const body = req.body;
      const refuse = (outcome: ReportOutcome, status: number, detail: string, edgeId?: string) => {
        reports.inc({ outcome });
        deps.logger.warn({ reqId: req.id, edgeId, outcome, detail, remote: req.ip }, 'serve report refused');
        return sendError(reply, status, outcome === 'malformed' ? detail : `${outcome}: ${detail}`);
      };
      if (!Buffer.isBuffer(body)) return refuse('malformed', 415, 'send the report as application/json');
      let raw: unknown;
      try {
        raw = JSON.parse(body.toString('utf8'));
      } catch {
        return refuse('malformed', 400, 'body is not JSON');
      }
      const parsed = parseServeReport(raw);
      if (!parsed.ok) return refuse('malformed', 400, parsed.error);
      const r = parsed.value;
      const header = req.headers[REPORT_SIGNATURE_HEADER];
      if (!reportSignatureValid(deps.keys(), typeof header === 'string' ? header : undefined, r.edgeId, body)) {
        return refuse('bad signature', STATUS['bad signature'], `no valid ${REPORT_SIGNATURE_HEADER} for edge "${r.edgeId}"`, r.edgeId);
      }
      const store = deps.store();
      if (!store) return sendError(reply, 503, 'starting');
      const verdict = checkServeReport(r, { isEdge: deps.isEdge, fileSize: deps.fileSize, now: deps.clock.now(), previous: store.previousOf(r.edgeId, r.instance) });
      if (!verdict.ok) return refuse(verdict.reason, STATUS[verdict.reason], verdict.detail, r.edgeId);
      store.record(r, deps.fileSize);
      reports.inc({ outcome: 'accepted' });
      if (verdict.unknownFiles > 0) deps.logger.info({ edgeId: r.edgeId, unknownFiles: verdict.unknownFiles }, 'serve report named files the catalog does not hold; skipped');
      return reply.code(204).send();
    });
  });
  return reports;
}
