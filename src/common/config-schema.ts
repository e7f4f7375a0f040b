import { type TObject, type TProperties, type TSchema, Type } from '@sinclair/typebox';
import { DEFAULT_HTTP_LIMITS, DEFAULT_PREFETCH, DEFAULT_SLICE_BYTES, ID_RE, MAX_WORKERS, WINDOW_RE } from './config.js';

/**
 * The cluster file as JSON Schema (published as schema/cluster.schema.json for editors, and what
 * `reelcdn check` and every role's start check the file against). It describes the file as
 * written, before defaults; what a schema cannot say (an ISP that exists, a parent in the same
 * ISP, two services on one port, a URL that parses) is checked in config-check.ts.
 *
 * Every object refuses keys it does not list: a typo like `sliceByte` would otherwise be
 * ignored and its default used without a word.
 *
 * Two annotations from VS Code's vocabulary carry the project's wording of a problem, so an
 * editor and `reelcdn check` say the same thing: `errorMessage` for any failure of the value
 * (type, range), `patternErrorMessage` for a string that does not match (`reelcdn check`
 * quotes the value before it). Without them the message follows from the type and bounds
 * (problemOf in config-check.ts).
 */

interface Notes {
  description: string;
  default?: unknown;
  errorMessage?: string;
  patternErrorMessage?: string;
  pattern?: string;
  minLength?: number;
}

/** Object of exactly these keys; the ones wrapped in Type.Optional may be left out. */
const strict = <T extends TProperties>(properties: T, description: string): TObject<T> =>
  Type.Object(properties, { additionalProperties: false, description });

const text = (n: Notes) => Type.String({ minLength: 1, ...n });
const positive = (n: Notes) => Type.Integer({ exclusiveMinimum: 0, ...n });
const nonNegative = (n: Notes) => Type.Integer({ minimum: 0, ...n });
const ratio = (n: Notes) => Type.Number({ minimum: 0, maximum: 1, ...n });
const flag = (n: Notes) => Type.Boolean(n);
const optional = <T extends TSchema>(t: T) => Type.Optional(t);

/** Ids of keys, ISPs and edges (config.ts's ID_RE, read when the schema is built). */
const ID_PROBLEM = "must be 1-64 characters of letters, digits, '.', '_' or '-'";
const idName = () => ({ type: 'string' as const, pattern: ID_RE.source, patternErrorMessage: ID_PROBLEM });
const id = (description: string) => text({ description, ...idName() });

const url = (description: string) => text({ description: `${description} An http:// or https:// URL; the service listens on its host and port.` });
const path = (description: string) => text({ description: `${description} Relative paths are relative to the cluster file.` });

const tlsBlock = (clientCert: boolean) =>
  strict(
    {
      certFile: path('PEM certificate (a chain: leaf first).'),
      keyFile: path('PEM private key of the certificate, unencrypted (keep it 0600).'),
      caFile: optional(
        path(
          'The CA that issued this certificate. Every caller in the cluster verifies this service against it (the cluster file is shared); without it, callers use the system CAs.' +
            (clientCert ? ' With requireClientCert, client certificates are checked against it too.' : ''),
        ),
      ),
      requireClientCert: optional(
        flag({
          description: clientCert
            ? 'The TLS handshake refuses a client without a certificate issued by caFile (edges and steering then show their own tls certificate).'
            : 'Origin only (origin.tls): true is refused here.',
          default: false,
        }),
      ),
    },
    'Certificate and key of a listener, used when the matching URL is https://.',
  );

/** `tls` and `adminTls` of a service. */
const serviceTls = (service: string, clientCert = false) => ({
  tls: optional({ ...tlsBlock(clientCert), description: `Certificate of ${service}'s public port (url), needed when url is https://; also shown as a client certificate to the services it calls.` }),
  adminTls: optional({ ...tlsBlock(false), description: `Certificate of ${service}'s admin port (adminUrl), needed when adminUrl is https://. Default: tls.` }),
});

/**
 * Built on first use, not at import: config.ts imports the checker, which imports this module,
 * which needs config.ts's constants.
 */
function build() {
  const signing = strict(
    {
      keys: optional(
        Type.Object(
          {},
          {
            description: 'keyId → secret, inline (then the cluster file is itself secret: chmod 600). Every key here is accepted by edges, so keys rotate by adding one, switching activeKey, then removing the old one. Give keys or keysFile, not both.',
            propertyNames: idName(),
            additionalProperties: text({ description: 'A signing secret, at least 16 characters.', minLength: 16, errorMessage: 'secret must be at least 16 characters' }),
          },
        ),
      ),
      keysFile: optional(path('File holding the keys (a JSON object of keyId → secret), readable by its owner only; keeps the cluster file free of secrets. Give keys or keysFile, not both.')),
      activeKey: text({ description: 'The key steering signs with; must be one of the keys.' }),
      ttlSeconds: optional(positive({ description: 'Lifetime of a signed URL, seconds.', default: 21600 })),
      required: optional(
        flag({ description: "Edges verify tokens, and the origin's /o/ wants an edge's token (or a verified client certificate); false only for lab setups and benchmarks.", default: true }),
      ),
    },
    'How steering signs the URLs it hands out and edges check them.',
  );

  const originFill = strict(
    {
      headroomRatio: optional(ratio({ description: "Share of each edge's disk the nightly plan leaves free for on-demand slices (0-1).", default: 0.1 })),
      halfLifeDays: optional(
        Type.Number({
          exclusiveMinimum: 0,
          maximum: 365,
          description: 'Half-life, in days, of past plays in the popularity prediction.',
          default: 2,
          errorMessage: 'must be a number of days above 0 and at most 365',
        }),
      ),
      stayRatio: optional(
        Type.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          description: 'Hysteresis, low side: a title placed yesterday keeps its place while its predicted plays are at least this share of the cut (the score of the last title that fits).',
          default: 0.8,
          errorMessage: 'must be a number above 0 and at most 1 (0.8: a placed title stays while above 0.8× the cut)',
        }),
      ),
      enterRatio: optional(
        Type.Number({
          maximum: 4,
          description: 'Hysteresis, high side: a title not placed yesterday enters only at this share of the cut or above. From stayRatio to 4; default 1 (or stayRatio if higher).',
          errorMessage: 'must be a number from stayRatio to 4 (1: a new title enters above the cut)',
        }),
      ),
      maxChurnRatio: optional(
        ratio({ description: "Bytes an edge may be asked to fetch in one night beyond the room yesterday's plan left free, as a share of its disk (0-1); spent on the biggest gains first.", default: 0.02 }),
      ),
      spareReplicas: optional(flag({ description: 'Room left once every ranked title is placed once buys extra copies of the most demanded titles.', default: true })),
    },
    'The nightly fill plan the origin makes for every edge.',
  );

  // As config.ts originStorage (S3_KEYS, BUCKET_RE, REGION_RE): kind "dir" takes no other key.
  const notForDir = { not: {}, errorMessage: 'not a setting of kind "dir" (the folder is origin.dataDir)' };
  const storage = Type.Object(
    {
      kind: optional(Type.String({ enum: ['dir', 's3'], errorMessage: 'must be "dir" or "s3"', description: '"dir": origin.dataDir holds everything; "s3": the catalog, titles and plays live in an S3-compatible bucket several origin replicas share.', default: 'dir' })),
      endpoint: optional(url("The store's URL (MinIO, Ceph, R2…); absent: AWS S3's own endpoint for region.")),
      bucket: optional(
        text({ description: 'Bucket name.', pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', patternErrorMessage: "is not a bucket name (3-63 lowercase letters, digits, '.' and '-')" }),
      ),
      region: optional(text({ description: 'Region, e.g. us-east-1.', pattern: '^[a-z0-9][a-z0-9-]{0,62}$', patternErrorMessage: 'is not a region name (e.g. us-east-1)' })),
      prefix: optional(Type.String({ description: 'Key prefix of everything the origin stores, like "reelcdn/prod" (no leading /, no empty, . or .. parts). Default: the bucket\'s root.', default: '' })),
      forcePathStyle: optional(flag({ description: 'Bucket in the path (endpoint/bucket/key) rather than the host name; most non-AWS stores need it.', default: false })),
    },
    {
      additionalProperties: false,
      description: 'Where the catalog, the titles and the play counts live. Credentials come from the AWS SDK\'s default chain (AWS_* variables, ~/.aws, roles). Restart-only.',
      if: { type: 'object', properties: { kind: { const: 's3' } }, required: ['kind'] },
      then: { type: 'object', properties: { bucket: { type: 'string', minLength: 1 }, region: { type: 'string', minLength: 1 } }, required: ['bucket', 'region'] },
      else: { type: 'object', properties: { endpoint: notForDir, bucket: notForDir, region: notForDir, prefix: notForDir, forcePathStyle: notForDir } },
    },
  );

  const origin = strict(
    {
      url: url('Public port: /o/{title}/{file} for edges (and steering) only.'),
      adminUrl: url('Admin port: /health, /metrics, the catalog, fill manifests, plays.'),
      ...serviceTls('the origin', true),
      dataDir: path("Where the catalog, the media and the play counts live (with storage kind s3: only this replica's local state)."),
      storage: optional(storage),
      fill: optional(originFill),
      maxSegmentsPerTitle: optional(
        positive({ description: "Media segments one title may list across its manifests; ingest refuses more (steering writes every DASH segment into the MPD it serves).", default: 50000 }),
      ),
    },
    'The origin: the catalog and the only copy of every title.',
  );

  const thresholds = strict(
    {
      maxErrorRatio: optional(ratio({ description: "An edge whose error ratio (5xx / requests, last interval) exceeds this is down.", default: 0.5 })),
      minRequestsForErrorRatio: optional(positive({ description: "The error ratio counts only over at least this many answers in the edge's 10 s window.", default: 50 })),
      maxDiskUsedRatio: optional(ratio({ description: 'An edge whose disk tier is fuller than this is down for new clients.', default: 0.99 })),
      maxConnections: optional(positive({ description: 'An edge with more open connections than this is down for new clients.', default: 20000 })),
    },
    'When steering stops sending new clients to an edge.',
  );

  const steering = strict(
    {
      url: url('Public port: /v1/play/…, /v1/steer/…, /v1/locate/…, /player/.'),
      adminUrl: url('Admin port: /health, /metrics, /v1/edges, /dashboard, /reload.'),
      ...serviceTls('steering'),
      healthIntervalMs: optional(positive({ description: "How often steering polls every edge's /health, ms.", default: 500 })),
      downAfter: optional(positive({ description: 'Consecutive failed polls before an edge is marked down.', default: 2 })),
      upAfter: optional(positive({ description: 'Consecutive good polls before a down edge is up again.', default: 2 })),
      trustedProxies: optional(Type.Array(text({ description: 'An address or CIDR prefix (IPv4 or IPv6).' }), { description: 'Addresses or CIDR prefixes whose X-Forwarded-For is believed.', default: [] })),
      thresholds: optional(thresholds),
      steeringTtlSeconds: optional(positive({ description: 'TTL of the content steering manifest, seconds (players re-poll after it).', default: 10 })),
      mpdCacheBytes: optional(positive({ description: 'Bytes of rewritten DASH MPDs kept.', default: 134217728 })),
      playDedupSeconds: optional(nonNegative({ description: "A client's plays of one title count once per this many seconds; 0: every play counts.", default: 3600 })),
      playConfirmSeconds: optional(positive({ description: 'How long a play waits for its first segment to reach an edge before it is forgotten, seconds.', default: 600 })),
      maxTrackedPlays: optional(positive({ description: 'Plays waiting for a segment, and client/title pairs remembered as counted, each at most this many.', default: 100000 })),
      balanceFactor: optional(
        Type.Number({
          minimum: 1,
          description: "Bounded loads: an edge whose latest load (connections or bytes/s) is at or above this × its ISP's mean takes no new sessions while an edge under it can. At least 1.",
          default: 1.25,
          errorMessage: 'must be a number of at least 1 (1.25: an edge takes new sessions up to 125% of its ISP mean)',
        }),
      ),
      incidentTtlSeconds: optional(positive({ description: "The steering manifest's TTL while any edge of the player's ISP is down, seconds.", default: 2 })),
      decisionBudget: optional(
        strict(
          {
            perSecond: optional(nonNegative({ description: 'Steering manifest reloads answered per second (one client: 1/16 of it); past it a reload whose pathway is fine gets a longer TTL (HLS) or 429 with Retry-After (DASH). 0: no budget.', default: 0 })),
            burst: optional(positive({ description: 'Token bucket size. Default: perSecond.' })),
          },
          'Steering manifest reloads answered per second by one steering process.',
        ),
      ),
    },
    'Steering: sends each player to an edge of its ISP.',
  );

  const isp = strict(
    {
      id: id('ISP id, used by edges[].isp and defaultIsp.'),
      prefixes: Type.Array(text({ description: 'An IPv4 or IPv6 prefix ("10.1.0.0/16", "2001:db8::/32") or address.' }), {
        description: "Client address prefixes of the ISP (longest match wins). A prefix belongs to one ISP only.",
      }),
      pinnedTitles: optional(Type.Array(text({ description: 'A title id.' }), { description: 'Titles every edge of the ISP holds whatever their popularity.', default: [] })),
    },
    'An ISP: the clients it serves (by address prefix) and, through edges[].isp, its edges.',
  );

  const edgeFill = strict(
    {
      window: optional(
        text({
          description: '"HH:MM-HH:MM" in the edge\'s timezone; may cross midnight ("22:00-04:00"); equal ends mean all day; the end may be 24:00.',
          pattern: WINDOW_RE.source,
          patternErrorMessage: 'must look like "02:00-06:00"',
          default: '02:00-06:00',
        }),
      ),
      bytesPerSec: optional(positive({ description: "Cap on the node's fill traffic (all sources together), bytes/s.", default: 50000000 })),
      pollIntervalMs: optional(positive({ description: 'How often the node asks the origin for its fill manifest, ms.', default: 600000 })),
    },
    'When and how fast the edge fills from its nightly manifest.',
  );

  const pf = DEFAULT_PREFETCH;
  const edgePrefetch = strict(
    {
      enabled: optional(flag({ description: 'Fetch the next object a player announces (CMCD nor/nrr) into the memory tier before it asks.', default: pf.enabled })),
      maxBufferMs: optional(
        positive({
          description: "No prefetch for a player whose buffer (CMCD bl) holds at least this much, ms: a miss costs it nothing. 30000 is hls.js's default buffer goal.",
          default: pf.maxBufferMs,
        }),
      ),
      maxConcurrent: optional(positive({ description: "Prefetches running at once on the node (a node of N workers gives each 1/N); more are skipped.", default: pf.maxConcurrent })),
      maxBytesInFlight: optional(
        positive({
          description: "Bytes the node's running prefetches may still bring (whole slices; a node of N workers gives each 1/N), and the most one prefetch brings. At least sliceBytes.",
          default: pf.maxBytesInFlight,
        }),
      ),
    },
    'Prefetch of the next object players announce (CMCD nor/nrr): docs/operations.md "Prefetch (CMCD nor/nrr)".',
  );

  const edge = strict(
    {
      id: id('Edge id (`reelcdn edge --id`).'),
      isp: text({ description: 'The id of the ISP (isps[].id) this edge serves.' }),
      url: url('Public port: /c/{title}/{file} for players.'),
      adminUrl: url('Admin port: /health, /metrics, /fill, /purge, /plays, /reload.'),
      ...serviceTls('the edge'),
      dataDir: path('The disk tier and fill state.'),
      diskBytes: positive({ description: 'Size of the disk tier, bytes.' }),
      memoryBytes: positive({ description: 'Size of the memory tier, bytes.' }),
      timezone: optional(text({ description: 'IANA timezone of the node, for its fill window.', default: 'UTC' })),
      fill: optional(edgeFill),
      sliceBytes: optional(Type.Integer({ minimum: 4096, maximum: 64 * 1024 * 1024, description: 'Slice size of the disk and memory tiers, bytes.', default: DEFAULT_SLICE_BYTES })),
      parent: optional(text({ description: "Upstream for misses: another edge's id of the same ISP (a parent) instead of the origin. No cycles." })),
      parentBreaker: optional(
        strict(
          {
            failures: optional(positive({ description: 'Consecutive failed requests to the parent (connect error, timeout, 5xx) that open the breaker.', default: 3 })),
            coolDownMs: optional(positive({ description: 'How long misses go straight to the origin before one probe tries the parent again, ms.', default: 5000 })),
          },
          'When to bypass the parent for the origin (only used with parent).',
        ),
      ),
      workers: optional(
        Type.Integer({
          minimum: 1,
          maximum: MAX_WORKERS,
          description: 'Worker processes on the public port. Unset: `reelcdn edge --workers`, else one per CPU.',
          errorMessage: `must be an integer from 1 to ${MAX_WORKERS}`,
        }),
      ),
      prefetch: optional(edgePrefetch),
    },
    'An edge cache node.',
  );

  const admin = strict(
    {
      openHealth: optional(flag({ description: '/health readable without the admin token (for load balancers and steering).', default: true })),
      openMetrics: optional(flag({ description: '/metrics readable without the admin token (for Prometheus).', default: false })),
    },
    'What the admin ports show without REELCDN_ADMIN_TOKEN.',
  );

  const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

  const d = DEFAULT_HTTP_LIMITS;
  const http = strict(
    {
      maxConnections: optional(positive({ description: 'Open connections per process on the public port.', default: d.maxConnections })),
      headersTimeoutMs: optional(positive({ description: "Time to receive a request's headers (and a TLS handshake), ms. At most requestTimeoutMs.", default: d.headersTimeoutMs })),
      requestTimeoutMs: optional(positive({ description: 'Time to receive a whole request, ms.', default: d.requestTimeoutMs })),
      keepAliveTimeoutMs: optional(positive({ description: 'Idle keep-alive connections are closed after this, ms.', default: d.keepAliveTimeoutMs })),
      maxEventLoopDelayMs: optional(positive({ description: 'Event-loop delay budget (p99 of a 500 ms sample), ms.', default: d.maxEventLoopDelayMs })),
      overloadSamples: optional(positive({ description: 'Consecutive 500 ms samples over (or back within) the budget before a process is overloaded (or ok again).', default: d.overloadSamples })),
      retryAfterSec: optional(positive({ description: 'Retry-After of a 503 for the connection cap or overload, seconds.', default: d.retryAfterSec })),
    },
    "Connection limits and overload shedding of every process's public port.",
  );

  return Type.Object(
    {
      $schema: optional(Type.String({ description: 'Where editors find this schema, e.g. "./schema/cluster.schema.json".' })),
      signing,
      origin,
      steering,
      isps: Type.Array(isp, { description: 'The ISPs clients come from.' }),
      defaultIsp: optional(text({ description: 'ISP (isps[].id) of clients no prefix matches. Absent: every edge is a candidate for them.' })),
      edges: Type.Array(edge, { description: 'The edge nodes, at least one.' }),
      admin: optional(admin),
      log: optional(strict({ level: optional(Type.String({ enum: LOG_LEVELS, description: 'Log level of every role.', default: 'info' })) }, 'Logging.')),
      http: optional(http),
    },
    {
      additionalProperties: false,
      title: 'ReelCDN cluster file',
      description: 'The one file every ReelCDN role reads (`reelcdn check --config FILE` checks it). See README.md "The cluster file" and docs/operations.md.',
    },
  );
}

let built: ReturnType<typeof build> | undefined;

/** The cluster file's schema (with the annotations above). */
export function clusterSchema(): ReturnType<typeof build> {
  built ??= build();
  return built;
}

/** schema/cluster.schema.json as it must be committed (scripts/gen-cluster-schema.mjs writes it). */
export function clusterSchemaText(): string {
  const published = { $schema: 'http://json-schema.org/draft-07/schema#', ...clusterSchema() };
  // JSON.stringify drops TypeBox's symbol-keyed bookkeeping.
  return `${JSON.stringify(published, null, 2)}\n`;
}
