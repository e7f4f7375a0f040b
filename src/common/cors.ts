/** CORS for public answers: players run on other origins and must read ranges and X-Cache. */
export const CORS_HEADERS: Record<string, string> = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'Content-Range, Content-Length, Accept-Ranges, ETag, Last-Modified, X-Cache, Age, traceparent, Retry-After',
};

export const CORS_PREFLIGHT_HEADERS: Record<string, string> = {
  ...CORS_HEADERS,
  'access-control-allow-methods': 'GET, HEAD, OPTIONS',
  'access-control-allow-headers': 'Range, If-Range, If-None-Match, If-Modified-Since, traceparent, Content-Type',
  'access-control-max-age': '86400',
};
