import { describe, expect, it } from 'vitest';
import { type ChaosReport, runChaos } from '../bench/chaos-driver.js';

/**
 * Issue 8's chaos test: origin, steering and three edges of one ISP as real processes, players
 * failing over from URL to URL, while edges are killed every 10 s, the origin is stopped for
 * 20 s, a disk fills to ENOSPC, slice files are corrupted, a title is re-ingested with other
 * bytes of the same size and a title is purged. Every body must equal one version of the source
 * file over exactly the range asked. The same run, longer, is `npm run bench:chaos`.
 */
describe('chaos', () => {
  it('serves never a wrong byte, never fails content cached on a live edge, and nothing exits unasked', async () => {
    const report: ChaosReport = await runChaos({ durationMs: 38_000, clients: 6 });
    console.log(`${report.faultLog.join('\n')}\n${report.summary}`);
    expect(report.tally.requests).toBeGreaterThan(100);
    // Else the re-ingest fault proved nothing: no player ever saw the new version.
    expect(report.tally.okVariant, 'answers with the re-ingested version').toBeGreaterThan(0);
    expect(report.tally.wrongAnswers, 'answers with wrong bytes').toEqual([]);
    expect(report.tally.failedCached, 'requests that failed on every URL although a live edge held the content').toEqual([]);
    expect(report.unexpectedExits.map((x) => `${x.name} (${x.signal ?? x.code})`), 'processes that exited unasked').toEqual([]);
    expect(report.driverErrors, 'faults the driver could not carry out').toEqual([]);
  }, 58_000);
});
