import { fileURLToPath } from 'node:url';
import { runIsolated } from '../test/browser/harness.ts';
import { percentile, round } from './stats.ts';

/**
 * The smartphone's pull in real Chromium: headless Chromium logged in as alice takes the handset's
 * intercom call `n` times (the handset pulls it back in between). Latency: the click on "Take the
 * call here" to the first intercom audio frame played in the page (RTCRtpReceiver's
 * synchronization source timestamp changes). Runs in its own network namespace with only
 * loopback (`unshare -n`, as the browser tests); bounded by a 3-minute deadline.
 */
export async function run(opts: { n?: number } = {}): Promise<Record<string, unknown>> {
  const n = opts.n ?? 20;
  const runner = fileURLToPath(new URL('../test/browser/runner.ts', import.meta.url));
  const r = await runIsolated(runner, ['bench', String(n)], { timeoutMs: 180_000 });
  if (typeof r.fatal === 'string') throw new Error(r.fatal.split('\n')[0]);
  const samples = Array.isArray(r.samples) ? r.samples.filter((x): x is number => typeof x === 'number') : [];
  if (samples.length !== n) throw new Error(`${samples.length} of ${n} pulls measured`);
  return { runs: n, p50Ms: round(percentile(samples, 0.5)), p95Ms: round(percentile(samples, 0.95)), maxMs: round(Math.max(...samples)) };
}
