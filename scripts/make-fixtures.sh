#!/usr/bin/env bash
# Regenerates the small media titles the tests and the demo use (test/fixtures/media/).
# The output is committed: CI and the demo never need ffmpeg. Re-run only to change them.
#
# Every title is ~12 s of testsrc2 + a sine tone, H.264 (baseline) / AAC-LC, 2 s GOPs so
# that every 2 s segment starts on a keyframe (-g 50 at 25 fps, no scene-cut keyframes).
set -euo pipefail

FFMPEG=${FFMPEG:-/usr/bin/ffmpeg}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/test/fixtures/media"
DUR=12
FPS=25
GOP=$((FPS * 2))

rm -rf "$OUT"
mkdir -p "$OUT/hls-bytes" "$OUT/dash" "$OUT/hls-segments"

common_in=(-hide_banner -loglevel error -y
  -f lavfi -i "testsrc2=size=640x360:rate=${FPS}:duration=${DUR}"
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=${DUR}")
x264=(-c:v libx264 -profile:v baseline -level 3.0 -pix_fmt yuv420p -preset veryfast
  -g "$GOP" -keyint_min "$GOP" -sc_threshold 0 -x264-params "scenecut=0:open_gop=0")
aac=(-c:a aac -b:a 24k -ac 1 -ar 48000)

# (a) HLS fMP4, two renditions, each one file addressed by EXT-X-BYTERANGE, plus master.m3u8.
# var_stream_map + master_pl_name make ffmpeg write CODECS/RESOLUTION/BANDWIDTH (hls.js needs CODECS).
( cd "$OUT/hls-bytes" && "$FFMPEG" "${common_in[@]}" \
  -filter_complex "[0:v]split=2[a][b];[a]scale=320:180[v0];[b]scale=640:360[v1]" \
  -map "[v0]" -map 1:a -map "[v1]" -map 1:a \
  "${x264[@]}" -b:v:0 60k -maxrate:v:0 80k -bufsize:v:0 120k -b:v:1 120k -maxrate:v:1 160k -bufsize:v:1 240k \
  "${aac[@]}" \
  -f hls -hls_time 2 -hls_playlist_type vod -hls_segment_type fmp4 \
  -hls_flags single_file+independent_segments \
  -master_pl_name master.m3u8 -var_stream_map "v:0,a:0,name:180p v:1,a:1,name:360p" \
  -hls_segment_filename "stream_%v.mp4" "stream_%v.m3u8" )

# (b) DASH, SegmentTemplate ($Number$ with a SegmentTimeline), two video representations + audio.
( cd "$OUT/dash" && "$FFMPEG" "${common_in[@]}" \
  -filter_complex "[0:v]split=2[a][b];[a]scale=320:180[v0];[b]scale=640:360[v1]" \
  -map "[v0]" -map "[v1]" -map 1:a \
  "${x264[@]}" -b:v:0 60k -maxrate:v:0 80k -bufsize:v:0 120k -b:v:1 120k -maxrate:v:1 160k -bufsize:v:1 240k \
  "${aac[@]}" \
  -f dash -seg_duration 2 -use_template 1 -use_timeline 1 -single_file 0 \
  -adaptation_sets "id=0,streams=v id=1,streams=a" \
  -init_seg_name 'init-$RepresentationID$.m4s' -media_seg_name 'chunk-$RepresentationID$-$Number%05d$.m4s' \
  manifest.mpd )

# (c) HLS fMP4, one rendition, one file per segment, with a master.m3u8.
( cd "$OUT/hls-segments" && "$FFMPEG" "${common_in[@]}" \
  -map 0:v -map 1:a -vf scale=320:180 \
  "${x264[@]}" -b:v 60k -maxrate 80k -bufsize 120k \
  "${aac[@]}" \
  -f hls -hls_time 2 -hls_playlist_type vod -hls_segment_type fmp4 -hls_flags independent_segments \
  -master_pl_name master.m3u8 -var_stream_map "v:0,a:0,name:180p" \
  -hls_fmp4_init_filename "init_180p.mp4" -hls_segment_filename "seg_%v_%03d.m4s" "index_%v.m3u8" )

du -sh "$OUT"
