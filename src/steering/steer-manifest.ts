/**
 * The content steering manifest (HLS: PATHWAY-PRIORITY; DASH-IF content steering:
 * SERVICE-LOCATION-PRIORITY). One document serves both: pathway ids and DASH
 * serviceLocation values are both edge ids. Players poll it every TTL seconds and add
 * their own query parameters (_HLS_pathway, _HLS_throughput, _DASH_pathway, ...), which
 * steering accepts and ignores: the ranking is recomputed from current health each time.
 */
export interface SteeringManifest {
  VERSION: 1;
  TTL: number;
  'RELOAD-URI': string;
  'PATHWAY-PRIORITY': string[];
  'SERVICE-LOCATION-PRIORITY': string[];
}

export function buildSteeringManifest(opts: { ttlSeconds: number; reloadUri: string; priority: readonly string[] }): SteeringManifest {
  return {
    VERSION: 1,
    TTL: opts.ttlSeconds,
    'RELOAD-URI': opts.reloadUri,
    'PATHWAY-PRIORITY': [...opts.priority],
    'SERVICE-LOCATION-PRIORITY': [...opts.priority],
  };
}

/** The steering manifest's own URL for a title (no query: the answer depends on the caller's address). */
export function steeringManifestUrl(publicUrl: string, title: string): string {
  return `${publicUrl}/v1/steer/${title}.json`;
}
