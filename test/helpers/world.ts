import type { Test } from 'tap';
import { World, LAB_CAST, type WorldEndpointSpec, type WorldOptions } from '../../lab/world.ts';
import { waitForWarmLinks, intercomCallsHandset, waitUntil } from '../../lab/story.ts';
import { createLogger } from '../../platform/log.ts';

/** The lab cast (plus extras) in one process; closed when the test ends. */
export async function labWorld(
  t: Test,
  extra: { accounts?: WorldOptions['accounts']; buddies?: WorldOptions['buddies']; endpoints?: WorldEndpointSpec[]; sweepTimeoutMs?: number; idleCloseMs?: number; ringTimeoutMs?: number; ice?: WorldOptions['ice']; push?: WorldOptions['push'] } = {},
): Promise<World> {
  const world = await World.start({
    accounts: [...LAB_CAST.accounts, ...(extra.accounts ?? [])],
    buddies: [...LAB_CAST.buddies, ...(extra.buddies ?? [])],
    endpoints: [...LAB_CAST.endpoints, ...(extra.endpoints ?? [])],
    log: createLogger({ level: process.env.SWEEP_TEST_LOG ?? 'silent', destination: process.stderr }),
    sweepTimeoutMs: extra.sweepTimeoutMs ?? 1500,
    // The engine's scenarios run once per crypto port (test/scenario/sweep-webcrypto.test.ts).
    crypto: process.env.SWEEP_TEST_CRYPTO === 'webcrypto' ? 'webcrypto' : 'node',
    ...(extra.idleCloseMs ? { idleCloseMs: extra.idleCloseMs } : {}),
    ...(extra.ringTimeoutMs ? { ringTimeoutMs: extra.ringTimeoutMs } : {}),
    ...(extra.ice ? { ice: extra.ice } : {}),
    ...(extra.push ? { push: extra.push } : {}),
  });
  t.teardown(() => world.close());
  await waitForWarmLinks(world, [['handset', 'phone']]);
  return world;
}

/** Intercom ↔ handset in an active call, and the phone linked to the intercom ahead of need (L3). */
export async function inCall(world: World, newcomers: string[] = ['phone']): Promise<void> {
  await intercomCallsHandset(world);
  await waitForWarmLinks(world, newcomers.map((n) => [n, 'intercom'] as [string, string]));
  await waitUntil(() => newcomers.every((n) => world.get(n).endpoint.calls.siblingCallsSnapshot().length > 0), 3000, 'siblings know the call');
  await sleep(200); // let audio flow both ways
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Call state of each endpoint: "active@phone" (state and the other party), or "none". */
export function states(world: World, ids: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const id of ids) {
    const s = world.get(id).endpoint.calls.snapshot();
    out[id] = s ? `${s.state}@${s.peer.endpointId}` : 'none';
  }
  return out;
}
