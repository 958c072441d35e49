import { measureChildCall } from './child-call.ts';

/**
 * One endpoint (the intercom, simulated audio) in its own process, in a call with the handset
 * for `seconds`: CPU ms per second of call and RSS, read from /proc, with the per-thread split.
 */
export async function run(opts: { seconds?: number; nodeArgs?: string[] } = {}): Promise<Record<string, unknown>> {
  const seconds = opts.seconds ?? 20;
  const r = await measureChildCall({ seconds, ...(opts.nodeArgs ? { nodeArgs: opts.nodeArgs } : {}) });
  return { seconds, ...r };
}
