import type { PrefixTable } from './prefix-table.js';
import { parseAddress } from './prefix-table.js';

/**
 * The client address steering decides on (docs/contract.md "Client → ISP → node").
 *
 * The socket's peer, unless that peer is a trusted proxy: then X-Forwarded-For is walked
 * right to left, skipping trusted hops, and the first untrusted address is the client
 * (entries left of it could have been written by anyone). A malformed header is ignored
 * as a whole — the answer falls back to the socket address, never an error.
 */
export function clientAddress(
  socketAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  trusted: PrefixTable<true> | undefined,
): string {
  const peer = normalise(socketAddress ?? '') ?? socketAddress ?? '';
  if (!trusted || forwardedFor === undefined || !trusted.has(peer)) return peer;
  const hops = forwardedHops(forwardedFor);
  if (hops === undefined) return peer; // malformed: believe none of it
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!trusted.has(hops[i]!)) return hops[i]!;
  }
  return hops[0]!;
}

/** X-Forwarded-For's hops, normalised, left to right; undefined when any is not an address (or it is over 4 KiB). */
export function forwardedHops(forwardedFor: string | string[]): string[] | undefined {
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
  if (header.length > 4096) return undefined;
  const hops: string[] = [];
  for (const raw of header.split(',')) {
    const a = normalise(stripPort(raw.trim()));
    if (a === undefined) return undefined;
    hops.push(a);
  }
  return hops;
}

/** "1.2.3.4:5678" → "1.2.3.4"; "[2001:db8::1]:443" → "2001:db8::1"; others unchanged. */
function stripPort(s: string): string {
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    return end < 0 ? s : s.slice(1, end);
  }
  const colon = s.indexOf(':');
  if (colon >= 0 && colon === s.lastIndexOf(':') && s.indexOf('.') >= 0) return s.slice(0, colon);
  return s;
}

/** A canonical text form: IPv4-mapped IPv6 becomes IPv4; undefined when not an address. */
export function normalise(s: string): string | undefined {
  if (s === '') return undefined;
  const a = parseAddress(s);
  if (!a) return undefined;
  if (a.v === 4) return `${a.n >>> 24}.${(a.n >>> 16) & 255}.${(a.n >>> 8) & 255}.${a.n & 255}`;
  const pct = s.indexOf('%');
  return (pct >= 0 ? s.slice(0, pct) : s).toLowerCase();
}
