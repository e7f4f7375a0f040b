/**
 * The QoE bench's title: real HLS made by ffmpeg as scripts/make-fixtures.sh makes the test
 * titles (testsrc2 and a sine tone, H.264 and AAC, 2 s GOPs and segments, fMP4 with an init
 * segment per rendition), but long and with a ladder of renditions encoded at constant bitrate
 * (x264's CBR with filler, over grain that keeps the encoder from undershooting), so segment
 * sizes follow the declared bitrates as an ABR client expects. Made once per set of parameters
 * and kept in the temp dir (`<tmp>/reelcdn-bench-qoe-media-<key>`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Rung {
  name: string;
  width: number;
  height: number;
  videoKbps: number;
}

export const DEFAULT_LADDER: readonly Rung[] = [
  { name: '180p', width: 320, height: 180, videoKbps: 200 },
  { name: '270p', width: 480, height: 270, videoKbps: 400 },
  { name: '360p', width: 640, height: 360, videoKbps: 800 },
  { name: '540p', width: 960, height: 540, videoKbps: 1600 },
];

export const AUDIO_KBPS = 32;
export const SEGMENT_S = 2;

export interface MediaSpec {
  seconds: number;
  ladder?: readonly Rung[];
  /** ffmpeg binary; default $FFMPEG or ffmpeg on PATH. */
  ffmpeg?: string;
}

/** The ffmpeg arguments that write the title into the current folder (master.m3u8 and one playlist per rung). */
export function ffmpegArgs(seconds: number, ladder: readonly Rung[]): string[] {
  const fps = 25;
  const gop = fps * SEGMENT_S;
  const n = ladder.length;
  const split = `[0:v]noise=alls=12:allf=t,split=${n}${ladder.map((_, i) => `[s${i}]`).join('')};` + ladder.map((r, i) => `[s${i}]scale=${r.width}:${r.height}[v${i}]`).join(';');
  return [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=960x540:rate=${fps}:duration=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
    '-filter_complex', split,
    ...ladder.flatMap((_, i) => ['-map', `[v${i}]`, '-map', '1:a']),
    '-c:v', 'libx264', '-profile:v', 'main', '-pix_fmt', 'yuv420p', '-preset', 'ultrafast',
    '-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0',
    '-x264-params', 'scenecut=0:open_gop=0:nal-hrd=cbr:force-cfr=1',
    ...ladder.flatMap((r, i) => {
      const b = `${r.videoKbps}k`;
      return [`-b:v:${i}`, b, `-minrate:v:${i}`, b, `-maxrate:v:${i}`, b, `-bufsize:v:${i}`, b];
    }),
    '-c:a', 'aac', '-b:a', `${AUDIO_KBPS}k`, '-ac', '1', '-ar', '48000',
    '-f', 'hls', '-hls_time', String(SEGMENT_S), '-hls_playlist_type', 'vod', '-hls_segment_type', 'fmp4',
    '-hls_flags', 'independent_segments', '-master_pl_name', 'master.m3u8',
    '-var_stream_map', ladder.map((r, i) => `v:${i},a:${i},name:${r.name}`).join(' '),
    '-hls_fmp4_init_filename', 'init_%v.mp4', '-hls_segment_filename', 'seg_%v_%03d.m4s', 'index_%v.m3u8',
  ];
}

/** The folder holding the title, made now if no earlier run left it. */
export function ensureMedia(spec: MediaSpec): { dir: string; made: boolean; seconds: number } {
  const ladder = spec.ladder ?? DEFAULT_LADDER;
  const key = `${spec.seconds}s-${ladder.map((r) => `${r.name}@${r.videoKbps}`).join('-')}`;
  const dir = join(tmpdir(), `reelcdn-bench-qoe-media-${key}`);
  if (existsSync(join(dir, 'master.m3u8'))) return { dir, made: false, seconds: spec.seconds };
  const ffmpeg = spec.ffmpeg ?? process.env.FFMPEG ?? 'ffmpeg';
  // Written beside, then renamed: a run stopped halfway never leaves a title that looks whole.
  const staging = `${dir}.partial-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    execFileSync(ffmpeg, ffmpegArgs(spec.seconds, ladder), { cwd: staging, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error(`bench:qoe makes its title with ffmpeg, and "${ffmpeg}" is not there: apt-get install ffmpeg, or FFMPEG=/path/to/ffmpeg`);
    throw new Error(`ffmpeg failed: ${e.stderr?.toString().trim() || (err as Error).message}`);
  }
  if (!readdirSync(staging).includes('master.m3u8')) throw new Error(`ffmpeg wrote no master.m3u8 in ${staging}`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  return { dir, made: true, seconds: spec.seconds };
}
