import { PanelEmulator } from '../drivers/buttons/panel-emulator.ts';
import { PanelConfig } from '../firmware-config/panel-config.ts';
import { World, LAB_CAST, type WorldEndpointSpec } from '../lab/world.ts';
import { waitForEvent, waitForWarmLinks, waitUntil } from '../lab/story.ts';
import { startPanel } from '../runtime/panel/panel-controller.ts';
import { createLogger } from '../platform/log.ts';
import { SocatPair } from '../test/helpers/socat.ts';
import { startLocalPushService } from '../test/helpers/local-push-service.ts';
import { closedPage } from '../test/helpers/push-page.ts';
import { percentile, round } from './stats.ts';

/**
 * Ringing a household (docs/protocol.md H1, H2), end to end: the intercom's bell line written on
 * the wire of a socat pty pair (the serial panel driver on the other end, the bell bound to the
 * account "alice") → every endpoint of alice (handset and two phones) ringing; then one of them
 * answers (in turn) → every other one stopped ringing. Once with warm links (made by the rounds
 * before) and once with on-demand links (each round waits until the idle links closed). Each
 * loop is bounded in rounds and in time. Then the Web Push series (pushSeries).
 */
const PHONE2: WorldEndpointSpec = { id: 'phone2', account: 'alice', kind: 'phone', label: 'Second phone', frequencyHz: 880 };
const HOUSEHOLD = ['handset', 'phone', 'phone2'];
const ROUND_BUDGET_MS = 60_000;

export async function run(opts: { n?: number; nCold?: number; nPush?: number } = {}): Promise<Record<string, unknown>> {
  const warm = await series({ n: opts.n ?? 30, cold: false });
  const cold = await series({ n: opts.nCold ?? 10, cold: true });
  const push = await pushSeries(opts.nPush ?? 20);
  return { endpoints: HOUSEHOLD.length, warm, onDemand: cold, push };
}

/**
 * A16: ring → the push for a closed phone page accepted by a real push service (web-push-testing
 * on 127.0.0.1, which checks the VAPID signature and decrypts). The handset answers each round.
 */
async function pushSeries(n: number): Promise<Record<string, unknown>> {
  const undo: Array<() => unknown> = [];
  const teardown = { teardown: (fn: () => unknown) => undo.push(fn) };
  const world = await World.start({ ...LAB_CAST, log: createLogger({ level: 'silent' }), push: { allowLoopbackHttp: true } });
  try {
    const push = await startLocalPushService(teardown);
    const sub = await closedPage(teardown, world, push, 'alice-page');
    const intercom = world.get('intercom').endpoint;
    const handset = world.get('handset').endpoint;
    const accepted: number[] = [];
    const deadline = performance.now() + ROUND_BUDGET_MS;
    for (let i = 0; i < n && performance.now() < deadline; i++) {
      const before = push.messages(sub.clientHash).length;
      const startedAt = performance.now();
      const ringing = intercom.calls.ringAccount('alice');
      await waitUntil(() => push.messages(sub.clientHash).length > before, 10_000, 'the ring push was accepted');
      accepted.push(performance.now() - startedAt);
      await waitUntil(() => handset.calls.snapshot()?.state === 'ringing', 10_000, 'the handset rings');
      await handset.calls.answer();
      await ringing;
      await intercom.calls.hangup('bench: next round');
      await waitUntil(() => handset.calls.snapshot()?.state === 'ended', 5000, 'the call ended');
    }
    return { n: accepted.length, ringToPushAcceptedP50Ms: round(percentile(accepted, 0.5)), ringToPushAcceptedP95Ms: round(percentile(accepted, 0.95)) };
  } finally {
    for (const fn of undo.reverse()) await fn();
    await world.close();
  }
}

async function series(opts: { n: number; cold: boolean }): Promise<Record<string, unknown>> {
  const log = createLogger({ level: 'silent' });
  const world = await World.start({ ...LAB_CAST, endpoints: [...LAB_CAST.endpoints, PHONE2], log, ...(opts.cold ? { idleCloseMs: 1000 } : {}) });
  const pair = await SocatPair.create();
  let wire: PanelEmulator | undefined;
  let panel: Awaited<ReturnType<typeof startPanel>> | undefined;
  try {
    wire = await PanelEmulator.open(pair.b);
    const intercom = world.get('intercom').endpoint;
    panel = await startPanel(intercom, PanelConfig.parse({ device: { driver: 'serial', path: pair.a }, buttons: [{ button: 'bell', action: 'call', account: 'alice', doorRights: true }] }), { log });
    await waitForWarmLinks(world, [['handset', 'phone'], ['handset', 'phone2'], ['phone', 'phone2']]);
    await waitUntil(() => intercom.householdOf('alice').length === HOUSEHOLD.length, 5000, 'the intercom sees the household');
    const ringing: number[] = [];
    const stopped: number[] = [];
    const deadline = performance.now() + ROUND_BUDGET_MS;
    // The first warm round makes the links: it is not counted.
    for (let i = opts.cold ? 0 : -1; i < opts.n && performance.now() < deadline; i++) {
      if (opts.cold) await waitUntil(() => HOUSEHOLD.every((id) => intercom.links.current(id) === undefined), 10_000, 'idle links closed');
      const rang = HOUSEHOLD.map((id) => waitForEvent(world.get(id).endpoint, 'call.state', (e) => e.call.state === 'ringing', 10_000).then(() => performance.now()));
      const writtenAt = await wire.press('bell', 'down');
      const allRinging = Math.max(...(await Promise.all(rang))) - writtenAt;
      const answerer = HOUSEHOLD[(i + 3) % HOUSEHOLD.length]!;
      const others = HOUSEHOLD.filter((id) => id !== answerer);
      const ended = others.map((id) => waitForEvent(world.get(id).endpoint, 'call.state', (e) => e.call.state === 'ended', 10_000).then(() => performance.now()));
      const answeredAt = performance.now();
      await world.get(answerer).endpoint.calls.answer();
      const othersStopped = Math.max(...(await Promise.all(ended))) - answeredAt;
      if (i >= 0) {
        ringing.push(allRinging);
        stopped.push(othersStopped);
      }
      await intercom.calls.hangup('bench: next round');
      await waitUntil(() => world.get(answerer).endpoint.calls.snapshot()?.state === 'ended', 5000, 'the call ended');
    }
    return {
      n: ringing.length,
      allRingingP50Ms: round(percentile(ringing, 0.5)),
      allRingingP95Ms: round(percentile(ringing, 0.95)),
      othersStoppedP50Ms: round(percentile(stopped, 0.5)),
      othersStoppedP95Ms: round(percentile(stopped, 0.95)),
      droppedLines: panel.panel.counters.badChecksum + panel.panel.counters.malformed,
    };
  } finally {
    await panel?.close();
    await wire?.close();
    await pair.close();
    await world.close();
  }
}
