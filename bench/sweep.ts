import { performance } from 'node:perf_hooks';
import { World, LAB_CAST } from '../lab/world.ts';
import { intercomCallsHandset, pullSweep, pushSweep, waitForWarmLinks, waitReadyForSweep } from '../lab/story.ts';
import { createLogger } from '../platform/log.ts';
import { percentile, round } from './stats.ts';

/**
 * Warm sweeps: the intercom calls the handset, then the call goes back and forth between the
 * handset and the phone, `n` pulls then `n` pushes. Latency: the first sweep message to the
 * first far-end audio frame at the new holder. `maxAudioGapMs`: the largest gap between audio
 * frames the intercom received over all sweeps.
 */
export async function run(opts: { n?: number } = {}): Promise<Record<string, unknown>> {
  const n = opts.n ?? 50;
  // Both alice endpoints take pushed calls at once, so pushes can go either way.
  const endpoints = LAB_CAST.endpoints.map((e) => (e.account === 'alice' ? { ...e, invites: 'auto' as const } : e));
  const world = await World.start({ ...LAB_CAST, endpoints, log: createLogger({ level: 'silent' }), sweepTimeoutMs: 3000 });
  try {
    await waitForWarmLinks(world, [['handset', 'phone']]);
    await intercomCallsHandset(world);
    await waitForWarmLinks(world, [['phone', 'intercom']]);
    const intercom = world.get('intercom');
    let holder = 'handset';
    let other = 'phone';
    const ready = () => waitReadyForSweep(world, holder, other);
    await ready();
    const since = performance.now();
    const pulls: number[] = [];
    const pushes: number[] = [];
    for (let i = 0; i < n; i++) {
      pulls.push((await pullSweep(world, other, holder)).ms);
      [holder, other] = [other, holder];
      await ready();
    }
    for (let i = 0; i < n; i++) {
      pushes.push((await pushSweep(world, holder, other)).ms);
      [holder, other] = [other, holder];
      await ready();
    }
    return {
      n,
      pullP50Ms: round(percentile(pulls, 0.5)),
      pullP95Ms: round(percentile(pulls, 0.95)),
      pushP50Ms: round(percentile(pushes, 0.5)),
      pushP95Ms: round(percentile(pushes, 0.95)),
      maxAudioGapMs: round(intercom.sink.maxGapMs(since)),
    };
  } finally {
    await world.close();
  }
}
