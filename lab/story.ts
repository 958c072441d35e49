import type { Endpoint } from '../runtime/endpoint.ts';
import type { EndpointEvents } from '../core/session/events.ts';
import { SweepError } from '../core/errors.ts';
import type { World } from './world.ts';

type Finished = EndpointEvents['sweep.finished'];

/** Resolves with the first event of `type` on `endpoint` that `match` accepts, or rejects after `ms`. */
export function waitForEvent<K extends keyof EndpointEvents & string>(
  endpoint: Endpoint,
  type: K,
  match: (e: EndpointEvents[K]) => boolean,
  ms: number,
): Promise<EndpointEvents[K]> {
  const owner = {};
  return new Promise<EndpointEvents[K]>((resolve, reject) => {
    const timer = setTimeout(() => {
      endpoint.bus.removeOwner(owner);
      reject(new SweepError('TIMEOUT', `${endpoint.id}: no ${type} within ${ms} ms`));
    }, ms);
    endpoint.bus.on(owner, type, (e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      endpoint.bus.removeOwner(owner);
      resolve(e);
    });
  });
}

/** Polls `cond` every 10 ms until it holds or `ms` pass. */
export async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new SweepError('TIMEOUT', `${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The lab's links are warm: siblings linked, and the phone linked to the far end of the handset's call. */
export async function waitForWarmLinks(world: World, pairs: Array<[string, string]>, ms = 10_000): Promise<void> {
  await waitUntil(
    () => pairs.every(([a, b]) => world.get(a).endpoint.links.current(b) !== undefined && world.get(b).endpoint.links.current(a) !== undefined),
    ms,
    `links ${pairs.map((p) => p.join('↔')).join(', ')}`,
  );
}

/** The intercom rings the handset and the handset answers; resolves when both are active. */
export async function intercomCallsHandset(world: World, intercom = 'intercom', handset = 'handset'): Promise<void> {
  const h = world.get(handset).endpoint;
  const ringing = waitForEvent(h, 'call.state', (e) => e.call.state === 'ringing', 5000);
  await world.get(intercom).endpoint.calls.placeCall(handset, { doorRights: true });
  await ringing;
  await h.calls.answer();
}

/**
 * H1, H2: the intercom rings `account`'s household; resolves when every one of `rung` rings, with
 * how long that took from the ring (ms) and a function that answers on `answerer` and resolves
 * when every other rung endpoint stopped ringing, with that time (ms from the answer).
 */
export async function ringHousehold(
  world: World,
  rung: string[],
  opts: { intercom?: string; account?: string } = {},
): Promise<{ allRingingMs: number; answer: (answerer: string) => Promise<{ othersStoppedMs: number }> }> {
  const t0 = performance.now();
  const ringing = settledLater(Promise.all(rung.map((id) => waitForEvent(world.get(id).endpoint, 'call.state', (e) => e.call.state === 'ringing', 10_000).then(() => performance.now()))));
  await world.get(opts.intercom ?? 'intercom').endpoint.calls.ringAccount(opts.account ?? 'alice', { doorRights: true });
  const allRingingMs = Math.max(...(await ringing)) - t0;
  const answer = async (answerer: string) => {
    const others = rung.filter((id) => id !== answerer);
    const stopped = settledLater(Promise.all(others.map((id) => waitForEvent(world.get(id).endpoint, 'call.state', (e) => e.call.state === 'ended', 10_000).then(() => performance.now()))));
    const a0 = performance.now();
    await world.get(answerer).endpoint.calls.answer();
    return { othersStoppedMs: Math.max(a0, ...(await stopped)) - a0 };
  };
  return { allRingingMs, answer };
}

/** A promise awaited later: if the code before the await throws, its rejection is not left unhandled. */
function settledLater<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** Push from `holder` to `to`; resolves with the newcomer's finished event and the latency from the push. */
export async function pushSweep(world: World, holder: string, to: string): Promise<{ finished: Finished; ms: number }> {
  const n = world.get(to).endpoint;
  const done = waitForEvent(n, 'sweep.finished', (e) => e.role === 'newcomer', 10_000);
  const { startedAtMono } = await world.get(holder).endpoint.calls.push({ to });
  const finished = await done;
  if (finished.outcome !== 'completed') throw new SweepError('REFUSED', `push sweep ${holder} → ${to} failed: ${finished.reason ?? ''}`);
  return { finished, ms: lastStep(finished) + (finished.startedAtMono - startedAtMono) };
}

/** Pull by `newcomer` from `holder`; resolves with the finished event and the latency. */
export async function pullSweep(world: World, newcomer: string, holder: string): Promise<{ finished: Finished; ms: number }> {
  const n = world.get(newcomer).endpoint;
  const done = waitForEvent(n, 'sweep.finished', (e) => e.role === 'newcomer', 10_000);
  await n.calls.pull({ from: holder });
  const finished = await done;
  return { finished, ms: lastStep(finished) };
}

function lastStep(f: Finished): number {
  return f.timeline.at(-1)?.ms ?? Number.NaN;
}

/**
 * Resolves when the next sweep from `holder` to `newcomer` can start on warm links: the holder's
 * call is active, the newcomer knows it at the far end's current epoch (presence.call) and is
 * linked to the far end.
 */
export async function waitReadyForSweep(world: World, holder: string, newcomer: string, farEnd = 'intercom'): Promise<void> {
  const epoch = world.get(farEnd).endpoint.calls.snapshot()?.epoch;
  await waitUntil(
    () =>
      world.get(holder).endpoint.calls.snapshot()?.state === 'active' &&
      world.get(newcomer).endpoint.calls.siblingCallsSnapshot().some((c) => c.epoch === epoch) &&
      world.get(newcomer).endpoint.links.current(farEnd) !== undefined,
    5000,
    `${newcomer} ready to take the call from ${holder}`,
  );
  // Let the old holder's leg wind down so sweeps do not overlap in the figures.
  await new Promise((r) => setTimeout(r, 60));
}
