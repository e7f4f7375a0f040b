const TYPES: Record<string, string> = {
  m3u8: 'application/vnd.apple.mpegurl',
  mpd: 'application/dash+xml',
  mp4: 'video/mp4',
  m4s: 'video/iso.segment',
  m4v: 'video/mp4',
  m4a: 'audio/mp4',
  ts: 'video/mp2t',
  aac: 'audio/aac',
  vtt: 'text/vtt',
  webvtt: 'text/vtt',
  json: 'application/json',
  key: 'application/octet-stream',
};

/** Content-Type of a media file by its extension. */
export function contentTypeFor(file: string): string {
  const dot = file.lastIndexOf('.');
  const ext = dot < 0 ? '' : file.slice(dot + 1).toLowerCase();
  return TYPES[ext] ?? 'application/octet-stream';
}
