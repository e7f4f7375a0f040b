import { connect } from 'node:net';

/** One part of a multipart/byteranges body, parsed back. */
export interface ByteRangePart {
  contentType: string;
  start: number;
  /** Inclusive, as printed in Content-Range. */
  end: number;
  size: number;
  body: Buffer;
}

/**
 * Parses a multipart/byteranges body (RFC 9110 §14.6) strictly: every part has its headers,
 * a Content-Range, exactly the bytes the range says, and the body ends with the close delimiter.
 * Throws on any framing error, so a test fails loudly rather than comparing garbage.
 */
export function parseMultipartByteranges(contentType: string, body: Buffer): ByteRangePart[] {
  const m = /^multipart\/byteranges;\s*boundary=("?)([^";]+)\1$/i.exec(contentType.trim());
  if (!m) throw new Error(`not multipart/byteranges: ${contentType}`);
  const boundary = m[2]!;
  const delim = Buffer.from(`--${boundary}`);
  const parts: ByteRangePart[] = [];
  let pos = 0;
  // Optional preamble: the first delimiter may or may not be preceded by CRLF.
  if (body.subarray(0, 2).toString() === '\r\n') pos = 2;
  for (;;) {
    if (!body.subarray(pos, pos + delim.length).equals(delim)) throw new Error(`expected boundary at ${pos}`);
    pos += delim.length;
    if (body.subarray(pos, pos + 2).toString() === '--') {
      pos += 2;
      const rest = body.subarray(pos).toString('latin1');
      if (rest !== '\r\n' && rest !== '') throw new Error(`junk after close delimiter: ${JSON.stringify(rest)}`);
      return parts;
    }
    if (body.subarray(pos, pos + 2).toString() !== '\r\n') throw new Error(`expected CRLF after boundary at ${pos}`);
    pos += 2;
    const headEnd = body.indexOf('\r\n\r\n', pos);
    if (headEnd < 0) throw new Error('part headers never end');
    const headers = new Map<string, string>();
    for (const line of body.subarray(pos, headEnd).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon < 0) throw new Error(`bad part header line: ${line}`);
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    pos = headEnd + 4;
    const cr = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(headers.get('content-range') ?? '');
    if (!cr) throw new Error(`part without Content-Range: ${[...headers].join(';')}`);
    const start = Number(cr[1]);
    const end = Number(cr[2]);
    const len = end - start + 1;
    parts.push({ contentType: headers.get('content-type') ?? '', start, end, size: Number(cr[3]), body: body.subarray(pos, pos + len) });
    pos += len;
    if (body.subarray(pos, pos + 2).toString() !== '\r\n') throw new Error(`expected CRLF after part body at ${pos}`);
    pos += 2;
  }
}

export interface RawAnswer {
  status: number;
  head: string;
  /** Whatever came after the head, until the server closed. */
  rest: Buffer;
}

/**
 * Sends one request with a path exactly as given (no URL normalisation, which would
 * resolve `..` before the server ever saw it) and reads until the server closes.
 */
export function rawRequest(baseUrl: string, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<RawAnswer> {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), u.hostname);
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, end < 0 ? all.length : end).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      resolve({ status, head, rest: end < 0 ? Buffer.alloc(0) : all.subarray(end + 4) });
    });
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n${extra}\r\n`, 'latin1'));
  });
}

/**
 * Sums the samples of one Prometheus series whose labels include all of `labels`.
 * Returns 0 when no sample matches (a counter that never moved is not exported per label).
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const lm of (m[3] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) have.set(lm[1]!, lm[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) total += Number(m[4]);
  }
  return total;
}

/** A loopback port with nothing listening on it (bound, then released). */
export async function deadPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
