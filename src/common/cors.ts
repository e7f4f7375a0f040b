/**
 * CORS for public answers: players run on other origins and must read ranges, X-Cache and the
 * server's CMSD (CTA-5006), and may send their CMCD (CTA-5004) as headers.
 */
export const CORS_HEADERS: Record<string, string> = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers':
    'Content-Range, Content-Length, Accept-Ranges, ETag, Last-Modified, X-Cache, Age, traceparent, Retry-After, CMSD-Static, CMSD-Dynamic',
};

export const CORS_PREFLIGHT_HEADERS: Record<string, string> = {
  ...CORS_HEADERS,
  'access-control-allow-methods': 'GET, HEAD, OPTIONS',
  // The CMCD-* headers are not CORS-safelisted: a player sending them asks first.
  'access-control-allow-headers': 'Range, If-Range, If-None-Match, If-Modified-Since, traceparent, Content-Type, CMCD-Object, CMCD-Request, CMCD-Session, CMCD-Status',
  'access-control-max-age': '86400',
};
