/**
 * A long VOD MPD for benches: `renditions` representations of `seconds` in `segmentSeconds`
 * segments, as a SegmentTimeline template (one S with @r per representation), the shape
 * packagers write and the one steering has to expand into a SegmentList.
 */
export function longMpd(opts: { seconds: number; renditions: number; segmentSeconds?: number }): string {
  const seg = opts.segmentSeconds ?? 2;
  const count = Math.ceil(opts.seconds / seg);
  const reps = Array.from({ length: opts.renditions }, (_, i) =>
    [
      `      <Representation id="${i}" mimeType="video/mp4" codecs="avc1.42c01e" bandwidth="${(i + 1) * 500000}" width="640" height="360">`,
      `        <SegmentTemplate timescale="1000" initialization="init-$RepresentationID$.m4s" media="chunk-$RepresentationID$-$Number%05d$.m4s" startNumber="1">`,
      `          <SegmentTimeline><S t="0" d="${seg * 1000}" r="${count - 1}"/></SegmentTimeline>`,
      `        </SegmentTemplate>`,
      `      </Representation>`,
    ].join('\n'),
  );
  return [
    '<?xml version="1.0" encoding="utf-8"?>',
    `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT${opts.seconds}S" minBufferTime="PT4S" profiles="urn:mpeg:dash:profile:isoff-live:2011">`,
    '  <Period id="0" start="PT0S">',
    '    <AdaptationSet id="0" contentType="video" segmentAlignment="true">',
    ...reps,
    '    </AdaptationSet>',
    '  </Period>',
    '</MPD>',
    '',
  ].join('\n');
}
