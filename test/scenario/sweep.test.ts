import t from 'tap';
import { performance } from 'node:perf_hooks';
import { labWorld, inCall, sleep, states } from '../helpers/world.ts';
import { watchLoopStalls } from '../../runtime/util/loop-stalls.ts';
import { pullSweep, pushSweep, waitForEvent, waitUntil } from '../../lab/story.ts';
import { issueGrant } from '../../core/engine/sweep-rules.ts';
import { SweepError } from '../../core/errors.ts';
import { nodeCrypto } from '../../platform/grant-crypto.ts';
import type { World } from '../../lab/world.ts';

const ALL = ['intercom', 'handset', 'phone'];
const TONE = { intercom: 330, handset: 550, phone: 770, tablet: 990 } as const;

/** Whose tone `id` heard over the next `ms` (the tone within 20 Hz), or what it heard instead. */
async function hears(world: World, id: string, ms = 300): Promise<number | string | null> {
  const since = performance.now();
  await sleep(ms);
  const hz = world.get(id).sink.frequencyHz(since);
  if (hz === null) return null;
  const tone = Object.values(TONE).find((f) => Math.abs(f - hz) <= 20);
  return tone ?? `${hz} Hz`;
}

void t.test('pull from the phone moves the call and its audio to the phone (claim 1, S3-S7)', async (t) => {
  const world = await labWorld(t);
  await inCall(world);
  t.equal(await hears(world, 'intercom'), TONE.handset, 'intercom hears the handset before');
  const { finished } = await pullSweep(world, 'phone', 'handset');
  t.equal(finished.outcome, 'completed');
  t.same(finished.timeline.map((s) => s.step), ['goAway', 'sessionInfo', 'update', 'updateResponse', 'firstFarEndAudio']);
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 2000, 'handset leg ended');
  t.same(states(world, ALL), { intercom: 'active@phone', handset: 'ended@intercom', phone: 'active@intercom' });
  t.equal(await hears(world, 'intercom'), TONE.phone, 'intercom hears the phone after');
  t.equal(await hears(world, 'phone'), TONE.intercom, 'phone hears the intercom');
  t.equal(world.get('intercom').endpoint.calls.snapshot()?.epoch, 1);
});

void t.test('push from the handset sweep button moves the call to the phone and back (S10)', async (t) => {
  const world = await labWorld(t);
  await inCall(world);
  const since = performance.now();
  const stalls = watchLoopStalls();
  const push = await pushSweep(world, 'handset', 'phone');
  t.ok(push.ms > 0 && push.ms < 1000, `push took ${push.ms} ms`);
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 2000, 'handset leg ended');
  t.same(states(world, ALL), { intercom: 'active@phone', handset: 'ended@intercom', phone: 'active@intercom' });
  await sleep(200);
  const gap = world.get('intercom').sink.maxGapMs(since);
  const stall = stalls.stop();
  // Make-before-break: at most three frame periods, plus whatever the host's load stalled us.
  t.ok(gap <= 60 + stall, `far end audio gap during the sweep ${gap.toFixed(1)} ms (event loop stalled up to ${stall.toFixed(1)} ms)`);

  // Back to the handset: the handset pulls, as it would with its "take back" key.
  await waitUntil(() => world.get('handset').endpoint.calls.siblingCallsSnapshot().length > 0, 3000, 'handset knows the phone call');
  await pullSweep(world, 'handset', 'phone');
  await waitUntil(() => world.get('phone').endpoint.calls.snapshot()?.state === 'ended', 2000, 'phone leg ended');
  t.same(states(world, ALL), { intercom: 'active@handset', handset: 'active@intercom', phone: 'ended@intercom' });
  t.equal(await hears(world, 'intercom'), TONE.handset);
  t.equal(world.get('intercom').endpoint.calls.snapshot()?.epoch, 2);
});

void t.test('update refused by the far end rolls back: the handset keeps talking, not on hold (S8)', async (t) => {
  const world = await labWorld(t);
  await inCall(world);
  // The intercom refuses this sweep (as a far end that changed its mind would).
  world.get('intercom').endpoint.links.current('phone')!.rpc.handle('sweep.update', () => {
    throw new SweepError('REFUSED', 'not today');
  });
  const err = (await world.get('phone').endpoint.calls.pull({ from: 'handset' }).catch((e: unknown) => e)) as SweepError;
  t.equal(err.code, 'REFUSED');
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'active', 2000, 'handset active again');
  t.same(states(world, ALL), { intercom: 'active@handset', handset: 'active@intercom', phone: 'ended@intercom' });
  t.equal(world.get('handset').endpoint.calls.snapshot()?.onHold, false);
  t.equal(await hears(world, 'intercom'), TONE.handset, 'intercom still hears the handset');
  t.equal(await hears(world, 'handset'), TONE.intercom, 'handset still hears the intercom');
});

void t.test('update never answered times out and rolls back on every side (S8)', async (t) => {
  const world = await labWorld(t, { sweepTimeoutMs: 600 });
  await inCall(world);
  world.get('intercom').endpoint.links.current('phone')!.rpc.handle('sweep.update', () => new Promise<never>(() => undefined));
  const err = (await world.get('phone').endpoint.calls.pull({ from: 'handset' }).catch((e: unknown) => e)) as SweepError;
  t.equal(err.code, 'TIMEOUT');
  await sleep(700); // past the holder's own deadline as well
  t.same(states(world, ALL), { intercom: 'active@handset', handset: 'active@intercom', phone: 'ended@intercom' });
  t.equal(await hears(world, 'intercom'), TONE.handset);
});

void t.test('two sweeps at once: exactly one wins, the other is refused clearly (S12)', async (t) => {
  const world = await labWorld(t, {
    endpoints: [{ id: 'tablet', account: 'alice', kind: 'phone', label: 'Tablet', frequencyHz: TONE.tablet }],
  });
  await inCall(world, ['phone', 'tablet']);
  const results = await Promise.allSettled([
    world.get('phone').endpoint.calls.pull({ from: 'handset' }),
    world.get('tablet').endpoint.calls.pull({ from: 'handset' }),
  ]);
  const won = results.filter((r) => r.status === 'fulfilled');
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  t.equal(won.length, 1, 'one sweep wins');
  t.equal(lost.length, 1, 'one sweep is refused');
  t.match((lost[0]!.reason as SweepError).code, /^(BUSY|STALE_EPOCH)$/);
  const winner = results[0].status === 'fulfilled' ? 'phone' : 'tablet';
  const loser = winner === 'phone' ? 'tablet' : 'phone';
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 2000, 'handset leg ended');
  const s = states(world, ['intercom', 'handset', winner, loser]);
  t.same(s, { intercom: `active@${winner}`, handset: 'ended@intercom', [winner]: 'active@intercom', [loser]: 'ended@intercom' });
  t.equal(await hears(world, 'intercom'), TONE[winner]);
});

void t.test('holder dies mid-sweep: the phone takes over without a grant (S9)', async (t) => {
  const world = await labWorld(t, { sweepTimeoutMs: 2500 });
  await inCall(world);
  // The handset dies the moment it is asked to go away.
  world.get('handset').endpoint.links.current('phone')!.rpc.handle('sweep.goAway', () => {
    setImmediate(() => void world.get('handset').endpoint.crash());
    return new Promise<never>(() => undefined);
  });
  await world.get('phone').endpoint.calls.pull({ from: 'handset' });
  t.same(states(world, ['intercom', 'phone']), { intercom: 'active@phone', phone: 'active@intercom' });
  t.equal(await hears(world, 'intercom'), TONE.phone);
});

void t.test('takeover without grant while the holder is alive is refused (S9)', async (t) => {
  const world = await labWorld(t);
  await inCall(world);
  const session = world.get('intercom').endpoint.calls.snapshot()!;
  const link = world.get('phone').endpoint.links.current('intercom')!;
  const err = (await link.rpc.request('sweep.update', { sweepId: 'x1', sessionId: session.sessionId, epoch: 1, grant: null }).catch((e: unknown) => e)) as SweepError;
  t.equal(err.code, 'UNAUTHORIZED');
  t.same(states(world, ALL), { intercom: 'active@handset', handset: 'active@intercom', phone: 'none' });
});

void t.test('forged, replayed and other-account updates are refused and the call is untouched (S6)', async (t) => {
  const world = await labWorld(t, {
    accounts: [{ name: 'mallory', displayName: 'Mallory' }],
    buddies: [['mallory', 'door']],
    endpoints: [{ id: 'mallory-phone', account: 'mallory', kind: 'phone', label: 'Not Alice', frequencyHz: 1200 }],
  });
  await inCall(world);
  const session = world.get('intercom').endpoint.calls.snapshot()!;
  const phoneToIntercom = world.get('phone').endpoint.links.current('intercom')!;

  // Forged: the phone signs a grant with its own key, claiming it is from the handset.
  const forged = await issueGrant({ sessionId: session.sessionId, from: 'handset', to: 'phone', epoch: 1, now: Date.now(), ttlMs: 3000 }, nodeCrypto(world.get('phone').endpoint.keys.signingPrivateKey));
  const e1 = (await phoneToIntercom.rpc.request('sweep.update', { sweepId: 'f1', sessionId: session.sessionId, epoch: 1, grant: forged.token }).catch((e: unknown) => e)) as SweepError;
  t.equal(e1.code, 'UNAUTHORIZED');

  // Other account: mallory gets a real grant from her own... nothing; she presents a grant the handset never gave her.
  const malloryLink = await world.get('mallory-phone').endpoint.links.get('intercom');
  const e2 = (await malloryLink.rpc.request('sweep.update', { sweepId: 'm1', sessionId: session.sessionId, epoch: 1, grant: forged.token }).catch((e: unknown) => e)) as SweepError;
  t.equal(e2.code, 'FORBIDDEN');
  t.same(states(world, ALL), { intercom: 'active@handset', handset: 'active@intercom', phone: 'none' });
  t.equal(await hears(world, 'intercom'), TONE.handset, 'the call is untouched');

  // Replayed: capture the real update of a completed sweep and send it again.
  let captured: { sweepId: string; sessionId: string; epoch: number; grant: string | null } | undefined;
  const original = phoneToIntercom.transport.sendText.bind(phoneToIntercom.transport);
  phoneToIntercom.transport.sendText = (text: string) => {
    const msg = JSON.parse(text) as { type?: string; body?: typeof captured };
    if (msg.type === 'sweep.update') captured = msg.body;
    original(text);
  };
  await pullSweep(world, 'phone', 'handset');
  t.ok(captured, 'update captured');
  const e3 = (await phoneToIntercom.rpc.request('sweep.update', captured!).catch((e: unknown) => e)) as SweepError;
  t.match(e3.code, /^(REPLAYED|STALE_EPOCH|BAD_STATE)$/);
  const e4 = (await phoneToIntercom.rpc.request('sweep.update', { ...captured!, epoch: 2 }).catch((e: unknown) => e)) as SweepError;
  t.match(e4.code, /^(BAD_STATE|UNAUTHORIZED)$/, 'a replayed grant with another epoch is refused');
  t.same(states(world, ['intercom', 'phone']), { intercom: 'active@phone', phone: 'active@intercom' });
});

void t.test('goAway with scope login logs the old endpoint out (S11)', async (t) => {
  const world = await labWorld(t);
  await inCall(world);
  const offline = waitForEvent(world.get('phone').endpoint, 'presence', (e) => e.endpoint.endpointId === 'handset' && !e.endpoint.online, 5000);
  await world.get('phone').endpoint.calls.pull({ from: 'handset', scope: 'login' });
  await offline;
  t.equal(world.get('handset').endpoint.calls.snapshot()?.state, 'ended');
  t.same(states(world, ['intercom', 'phone']), { intercom: 'active@phone', phone: 'active@intercom' });
});

void t.test('goAway with the default scope leaves the handset logged in and usable (S11)', async (t) => {
  const world = await labWorld(t);
  await inCall(world);
  await pullSweep(world, 'phone', 'handset');
  await sleep(300);
  t.equal(world.get('handset').endpoint.access.state, 'online');
  await world.get('phone').endpoint.calls.hangup();
  await waitUntil(() => world.get('intercom').endpoint.calls.snapshot()?.state === 'ended', 2000, 'intercom call ended');
  await sleep(100);
  await world.get('intercom').endpoint.calls.placeCall('handset');
  t.equal(world.get('handset').endpoint.calls.snapshot()?.state, 'ringing', 'the handset rings for the next call');
});

void t.test('pull while the access server is down still moves the call over the warm links', async (t) => {
  const world = await labWorld(t);
  await inCall(world);
  await world.server.close();
  await sleep(200);
  const { finished } = await pullSweep(world, 'phone', 'handset');
  t.equal(finished.outcome, 'completed');
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 2000, 'handset leg ended');
  t.same(states(world, ALL), { intercom: 'active@phone', handset: 'ended@intercom', phone: 'active@intercom' });
  t.equal(await hears(world, 'intercom'), TONE.phone);
});
