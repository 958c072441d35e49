import t, { type Test } from 'tap';
import { labWorld, states } from '../helpers/world.ts';
import { waitForEvent, waitUntil } from '../../lab/story.ts';
import type { World, WorldEndpointSpec } from '../../lab/world.ts';
import type { EndpointEvents } from '../../core/session/events.ts';
import type { SweepError } from '../../core/errors.ts';
import { startLabPanels } from '../../lab/lab-panels.ts';
import { answeredElsewhereText } from '../../core/engine/ring-in.ts';
import { silentLogger } from '../../platform/log.ts';

/** Ringing a household (docs/protocol.md part H) with real links: the handset and two phones of "alice". */
const PHONE2: WorldEndpointSpec = { id: 'phone2', account: 'alice', kind: 'phone', label: 'Second phone', frequencyHz: 880 };
const HOUSEHOLD = ['handset', 'phone', 'phone2'];
const ringing = (world: World, ids: string[]) => ids.every((id) => world.get(id).endpoint.calls.snapshot()?.state === 'ringing');
const ended = (world: World, id: string) => waitForEvent(world.get(id).endpoint, 'call.state', (e) => e.call.state === 'ended', 8000);

async function household(t: Test, extra: Parameters<typeof labWorld>[1] = {}, withPhone2 = true): Promise<World> {
  const world = await labWorld(t, { ...extra, endpoints: [...(withPhone2 ? [PHONE2] : []), ...(extra.endpoints ?? [])] });
  // The intercom learns alice's endpoints from presence (A4).
  const online = withPhone2 ? 3 : 2;
  await waitUntil(() => world.get('intercom').endpoint.householdOf('alice').length === online, 5000, 'the intercom sees the household online');
  return world;
}

async function ringAll(world: World, ids = HOUSEHOLD): Promise<void> {
  const snap = await world.get('intercom').endpoint.calls.ringAccount('alice', { doorRights: true, label: 'Alice (flat 4)' });
  if (snap.state !== 'ringing') throw new Error(`the ring ended at once: ${JSON.stringify(snap)}`);
  await waitUntil(() => ringing(world, ids), 8000, `${ids.join(', ')} ringing`);
}

function collect<K extends keyof EndpointEvents & string>(world: World, id: string, type: K): Array<EndpointEvents[K]> {
  const out: Array<EndpointEvents[K]> = [];
  world.get(id).endpoint.bus.on(out, type, (e) => out.push(e));
  return out;
}

void t.test('answeredElsewhereText on a refusal as the rpc tells it keeps "answered on <label>" (H3)', async (t) => {
  t.equal(answeredElsewhereText('call.answer: answered on Desk handset (H3)'), 'answered on Desk handset');
  t.equal(answeredElsewhereText('answered on Smartphone (simulated) (H3)'), 'answered on Smartphone (simulated)');
  t.equal(answeredElsewhereText('something else'), 'answered on another device');
});

void t.test('ringAccount rings every online endpoint of the account at once (H1)', async (t) => {
  const world = await household(t);
  const started = collect(world, 'intercom', 'ring.started');
  await ringAll(world);
  t.same(states(world, ['intercom', ...HOUSEHOLD]), { intercom: 'ringing@', handset: 'ringing@intercom', phone: 'ringing@intercom', phone2: 'ringing@intercom' });
  t.same(started[0]?.endpoints.sort(), HOUSEHOLD, 'ring.started names every endpoint rung');
});

void t.test('answer on one endpoint wins; the others stop with "answered on <label>" (H2, H10)', async (t) => {
  const world = await household(t);
  await ringAll(world);
  const handsetEnded = ended(world, 'handset');
  const phone2Ended = ended(world, 'phone2');
  await world.get('phone').endpoint.calls.answer();
  t.equal(states(world, ['intercom'])['intercom'], 'active@phone', 'the intercom talks to the phone that answered');
  t.equal((await handsetEnded).reason, 'answered on Smartphone (simulated)');
  t.equal((await phone2Ended).reason, 'answered on Smartphone (simulated)');
  await waitUntil(() => Math.abs((world.get('intercom').sink.frequencyHz() ?? 0) - 770) < 40, 5000, 'the intercom hears the phone (770 Hz)');
});

void t.test('two answers at the same moment give exactly one call, the other is refused ANSWERED_ELSEWHERE (H3)', async (t) => {
  const world = await household(t);
  await ringAll(world);
  const endedAt = { handset: collect(world, 'handset', 'call.state'), phone: collect(world, 'phone', 'call.state') };
  const results = await Promise.allSettled([world.get('handset').endpoint.calls.answer(), world.get('phone').endpoint.calls.answer()]);
  const won = results.filter((r) => r.status === 'fulfilled');
  const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as SweepError] : []));
  t.equal(won.length, 1, 'exactly one answer wins');
  t.equal(lost[0]?.code, 'ANSWERED_ELSEWHERE');
  const winner = results[0].status === 'fulfilled' ? 'handset' : 'phone';
  const loser = winner === 'handset' ? 'phone' : 'handset';
  t.equal(states(world, ['intercom'])['intercom'], `active@${winner}`);
  await waitUntil(() => world.get(loser).endpoint.calls.snapshot()?.state === 'ended', 5000, 'the loser stops ringing');
  const label = winner === 'handset' ? 'Desk handset' : 'Smartphone (simulated)';
  t.equal(endedAt[loser].find((e) => e.call.state === 'ended')?.reason, `answered on ${label}`, 'the loser shows where it was answered');
  t.match(lost[0]?.message, `answered on ${label} (H3)`, 'the refusal names the winner');
});

void t.test('decline on one endpoint stops only that one; decline on all ends the call as missed (H4)', async (t) => {
  const world = await household(t);
  const forks = collect(world, 'intercom', 'ring.fork');
  await ringAll(world);
  await world.get('handset').endpoint.calls.reject('not now');
  await waitUntil(() => forks.some((f) => f.endpointId === 'handset' && f.state === 'declined'), 5000, 'handset fork declined');
  t.same(states(world, ['intercom', 'phone', 'phone2']), { intercom: 'ringing@', phone: 'ringing@intercom', phone2: 'ringing@intercom' }, 'the others ring on');
  const ringEnded = waitForEvent(world.get('intercom').endpoint, 'ring.ended', () => true, 8000);
  await world.get('phone').endpoint.calls.reject('not now');
  await world.get('phone2').endpoint.calls.reject('not now');
  const e = await ringEnded;
  t.equal(e.outcome, 'missed');
  t.same([...e.rang].sort(), HOUSEHOLD, 'ring.ended names every endpoint that rang (the seam for history, H11)');
  t.equal(world.get('intercom').endpoint.calls.snapshot()?.state, 'ended');
});

void t.test('nobody answers within the ring timeout: every endpoint stops with "missed" (H5)', async (t) => {
  const world = await household(t, { ringTimeoutMs: 1500 });
  await ringAll(world);
  const all = await Promise.all(HOUSEHOLD.map((id) => ended(world, id)));
  t.same(
    all.map((e) => e.reason),
    ['missed', 'missed', 'missed'],
  );
  t.match(world.get('intercom').endpoint.calls.snapshot(), { state: 'ended' });
});

void t.test('an endpoint of the household that comes online while it rings is rung too (H1)', async (t) => {
  const world = await household(t, {}, false);
  await ringAll(world, ['handset', 'phone']);
  await world.startEndpoint(PHONE2);
  await waitUntil(() => ringing(world, ['phone2']), 10_000, 'the new phone rings');
  t.equal(states(world, ['phone2'])['phone2'], 'ringing@intercom');
  const phoneEnded = ended(world, 'phone');
  await world.get('phone2').endpoint.calls.answer();
  t.equal((await phoneEnded).reason, 'answered on Second phone');
});

void t.test('an endpoint set to do not disturb is skipped; all of them: missed at once (H7)', async (t) => {
  const world = await household(t);
  world.get('handset').endpoint.calls.setDoNotDisturb(true);
  const forks = collect(world, 'intercom', 'ring.fork');
  await ringAll(world, ['phone', 'phone2']);
  await waitUntil(() => forks.some((f) => f.endpointId === 'handset' && f.state === 'dnd'), 5000, 'handset skipped');
  t.equal(world.get('handset').endpoint.calls.snapshot(), null, 'the handset never rang');
  await world.get('intercom').endpoint.calls.hangup('test');
  await Promise.all(['phone', 'phone2'].map((id) => waitUntil(() => world.get(id).endpoint.calls.snapshot()?.state === 'ended', 5000, `${id} stops`)));

  for (const id of HOUSEHOLD) world.get(id).endpoint.calls.setDoNotDisturb(true);
  const missed = waitForEvent(world.get('intercom').endpoint, 'ring.ended', () => true, 5000);
  const snap = await world.get('intercom').endpoint.calls.ringAccount('alice');
  t.equal(snap.state, 'ended', 'every endpoint skipped: missed at once');
  const m = await missed;
  t.equal(m.outcome, 'missed');
  t.same(m.rang, [], 'nobody rang');
  t.same(HOUSEHOLD.map((id) => world.get(id).endpoint.calls.snapshot()?.state ?? 'none'), ['none', 'ended', 'ended'], 'no device rang again');
});

void t.test('an endpoint in a call answers BUSY and is skipped; the others ring (H6)', async (t) => {
  const world = await household(t, {
    accounts: [{ name: 'back', displayName: 'Back door' }],
    buddies: [['alice', 'back']],
    endpoints: [{ id: 'backdoor', account: 'back', kind: 'intercom', label: 'Back door intercom', frequencyHz: 990 }],
  });
  await world.get('backdoor').endpoint.calls.placeCall('handset');
  await world.get('handset').endpoint.calls.answer();
  const forks = collect(world, 'intercom', 'ring.fork');
  await ringAll(world, ['phone', 'phone2']);
  await waitUntil(() => forks.some((f) => f.endpointId === 'handset' && f.state === 'busy'), 5000, 'handset skipped as busy');
  t.equal(states(world, ['handset'])['handset'], 'active@backdoor', 'the handset call is untouched');
});

void t.test('answers, declines and cancels not for a ringing session, from another account or replayed are refused and change nothing (H9)', async (t) => {
  const world = await household(t, {
    accounts: [{ name: 'bob', displayName: 'Bob (flat 5)' }],
    buddies: [['bob', 'door']],
    endpoints: [{ id: 'bob-desk', account: 'bob', kind: 'deskphone', label: "Bob's desk", frequencyHz: 1100 }],
  });
  const intercom = world.get('intercom').endpoint;
  // Bob links to the intercom before the ring (a link of a buddy account).
  const bobLink = await world.get('bob-desk').endpoint.links.get('intercom');
  await ringAll(world);
  const sessionId = intercom.calls.snapshot()!.sessionId;
  const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: SweepError) => e.code);

  t.equal(await code(bobLink.rpc.request('call.answer', { sessionId })), 'FORBIDDEN', 'another account cannot answer');
  t.equal(await code(bobLink.rpc.request('call.reject', { sessionId, reason: 'x' })), 'FORBIDDEN', 'nor decline');
  const phoneLink = world.get('phone').endpoint.links.current('intercom')!;
  t.equal(await code(phoneLink.rpc.request('call.answer', { sessionId: 'not-this-one' })), 'NOT_FOUND', 'another session');
  const fromSibling = world.get('handset').endpoint.links.current('phone')!;
  t.equal(await code(fromSibling.rpc.request('call.cancel', { sessionId, reason: 'answered', by: 'me' })), 'NOT_FOUND', 'only the caller cancels');
  t.same(states(world, ['intercom', ...HOUSEHOLD]), { intercom: 'ringing@', handset: 'ringing@intercom', phone: 'ringing@intercom', phone2: 'ringing@intercom' }, 'nothing changed');

  await world.get('phone').endpoint.calls.answer();
  t.equal(await code(phoneLink.rpc.request('call.answer', { sessionId })), 'BAD_STATE', 'a replayed answer');
  t.equal(await code(phoneLink.rpc.request('call.reject', { sessionId, reason: 'late' })), 'BAD_STATE', 'a decline after the answer');
  const toHandset = intercom.links.current('handset')!;
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 5000, 'the handset stopped ringing');
  t.equal(await code(toHandset.rpc.request('call.cancel', { sessionId, reason: 'missed' })), 'BAD_STATE', 'a replayed cancel');
  const toPhone = intercom.links.current('phone')!;
  t.equal(await code(toPhone.rpc.request('call.cancel', { sessionId, reason: 'missed' })), 'BAD_STATE', 'a cancel cannot end an answered call');
  t.same(states(world, ['intercom', 'phone']), { intercom: 'active@phone', phone: 'active@intercom' }, 'the call is untouched');
});

void t.test('a ringing endpoint whose link dies stops ringing; the others go on (H8)', async (t) => {
  const world = await household(t);
  const forks = collect(world, 'intercom', 'ring.fork');
  await ringAll(world);
  world.get('intercom').endpoint.links.current('phone2')!.close('test cuts it');
  await waitUntil(() => forks.some((f) => f.endpointId === 'phone2' && f.state === 'lost'), 5000, 'phone2 fork lost');
  t.same(states(world, ['intercom', 'handset', 'phone']), { intercom: 'ringing@', handset: 'ringing@intercom', phone: 'ringing@intercom' });
  const handsetEnded = ended(world, 'handset');
  await world.get('phone').endpoint.calls.answer();
  t.equal((await handsetEnded).reason, 'answered on Smartphone (simulated)');
});

void t.test("the lab's bell rings the handset and the phone together; the handset's answer key answers and the phone stops (H1, H2)", async (t) => {
  const world = await household(t, {}, false);
  const lines: string[] = [];
  const panels = await startLabPanels(world, silentLogger(), (l) => lines.push(l));
  t.teardown(() => panels.close());
  await panels.intercom.press('call');
  await waitUntil(() => ringing(world, ['handset', 'phone']), 8000, 'handset and phone ring');
  await waitUntil(() => lines.some((l) => /handset LED call: ringing/.test(l)), 5000, 'the handset call LED rings');
  const phoneEnded = ended(world, 'phone');
  await panels.handset.press('answer');
  t.equal((await phoneEnded).reason, 'answered on Desk handset');
  await waitUntil(() => states(world, ['intercom'])['intercom'] === 'active@handset', 5000, 'intercom talks to the handset');
  // The handset's door key works in an active call (D1): wait until the handset has its answer back too.
  await waitUntil(() => states(world, ['handset'])['handset'] === 'active@intercom', 5000, 'the handset is in the call');
  // H10: the door follows the answered call, from the handset's door key.
  await panels.handset.press('door');
  await waitUntil(() => lines.some((l) => /intercom DOOR RELAY pulsed 500 ms/.test(l)), 5000, 'the door opened');
});

void t.test('the bell when every device of the flat is set to do not disturb: missed at once, the bell shows the error pattern (H7)', async (t) => {
  const world = await household(t);
  for (const id of HOUSEHOLD) world.get(id).endpoint.calls.setDoNotDisturb(true);
  const lines: string[] = [];
  const panels = await startLabPanels(world, silentLogger(), (l) => lines.push(l));
  t.teardown(() => panels.close());
  await panels.intercom.press('call');
  await waitUntil(() => lines.some((l) => /intercom LED call: error/.test(l)), 5000, 'the bell shows nobody home');
  t.equal(world.get('intercom').endpoint.calls.snapshot()?.state, 'ended');
  t.same(HOUSEHOLD.map((id) => world.get(id).endpoint.calls.snapshot()), [null, null, null], 'no device rang');
  // The visitor hears it too: three falling tones from the intercom's speaker.
  const sink = world.get('intercom').sink;
  const tones = () => sink.frames.map((f) => (f.frequencyHz === null ? null : Math.round(f.frequencyHz / 50) * 50));
  await waitUntil(() => tones().filter((hz) => hz === 400).length >= 15, 5000, 'the nobody-home tone played');
  const heard = tones().filter((hz, i, all) => hz !== null && hz !== all[i - 1]);
  t.same(heard, [700, 550, 400], 'falling tones: nobody home');
});

void t.test('a device configured with calls.doNotDisturb is skipped by the household ring (H7)', async (t) => {
  const world = await household(t, {}, false);
  const dndPhone = { ...PHONE2, doNotDisturb: true };
  await world.startEndpoint(dndPhone);
  await waitUntil(() => world.get('intercom').endpoint.householdOf('alice').length === 3, 5000, 'the intercom sees the third device');
  t.equal(world.get('phone2').endpoint.calls.doNotDisturb, true, 'the config key sets it at start');
  const forks = collect(world, 'intercom', 'ring.fork');
  await ringAll(world, ['handset', 'phone']);
  await waitUntil(() => forks.some((f) => f.endpointId === 'phone2' && f.state === 'dnd'), 5000, 'phone2 skipped');
  t.equal(world.get('phone2').endpoint.calls.snapshot(), null, 'phone2 never rang');
});
