import t from 'tap';
import { labWorld, sleep } from '../helpers/world.ts';
import { waitForEvent, waitUntil } from '../../lab/story.ts';
import type { World } from '../../lab/world.ts';
import type { CallRecord } from '../../core/protocol/history.ts';
import type { SweepError } from '../../core/errors.ts';

/** A15: the record of a household call (part H), reported by the intercom over its access connection. */
const HANDSET = { endpointId: 'handset', label: 'Desk handset' };
const PHONE = { endpointId: 'phone', label: 'Smartphone (simulated)' };
const DOOR = { endpointId: 'intercom', label: 'Front door intercom' };

async function household(t: Parameters<typeof labWorld>[0], extra: Parameters<typeof labWorld>[1] = {}): Promise<World> {
  const world = await labWorld(t, extra);
  await waitUntil(() => world.get('intercom').endpoint.householdOf('alice').length === 2, 5000, 'the intercom sees the household online');
  return world;
}

/** What an endpoint of the account is shown: the newest records the server keeps for it. */
async function historyOf(world: World, id: string): Promise<CallRecord[]> {
  return (await world.get(id).endpoint.access.request('history.list', { limit: 20 })).records;
}

/** Polls the server until `id` is shown at least one record (the report travels after the call ends). */
async function recordsReach(world: World, id: string): Promise<void> {
  const deadline = Date.now() + 8000;
  while ((await historyOf(world, id)).length === 0) {
    if (Date.now() > deadline) throw new Error(`no call record reached ${id} within 8 s`);
    await sleep(50);
  }
}

async function ring(world: World): Promise<void> {
  await world.get('intercom').endpoint.calls.ringAccount('alice', { doorRights: true, label: 'Alice (flat 4)' });
  await waitUntil(() => ['handset', 'phone'].every((id) => world.get(id).endpoint.calls.snapshot()?.state === 'ringing'), 8000, 'handset and phone ringing');
}

void t.test('history.list after a missed ring of handset and phone shows one missed record (A15, H5)', async (t) => {
  const world = await household(t, { ringTimeoutMs: 1500 });
  const published: CallRecord[] = [];
  world.get('intercom').endpoint.bus.on(published, 'call.record', (e) => published.push(e.record));
  await ring(world);
  await waitForEvent(world.get('intercom').endpoint, 'ring.ended', () => true, 8000);
  await recordsReach(world, 'handset');
  await sleep(300); // a second record would have arrived by now
  const records = await historyOf(world, 'handset');
  t.equal(records.length, 1, 'one record however many devices rang');
  t.match(records[0], { account: 'alice', door: DOOR, caller: 'Alice (flat 4)', outcome: 'missed', sweeps: [] });
  t.same([...records[0]!.rang].sort((a, b) => a.endpointId.localeCompare(b.endpointId)), [HANDSET, PHONE], 'both devices rang');
  t.equal(records[0]!.answeredBy, undefined, 'nobody answered');
  t.ok(records[0]!.durationMs >= 1400, `lasted the ring timeout (${records[0]!.durationMs} ms)`);
  t.ok(Math.abs(records[0]!.startedAt - Date.now()) < 30_000, 'started now');
  t.same(await historyOf(world, 'phone'), records, 'every endpoint of the household sees it');
  t.same(await historyOf(world, 'intercom'), records, 'the door that rang sees it');
  t.same(published, records, 'the intercom published the same record on its bus (diagnostics event call.record)');
});

void t.test('history.list after an answered call swept to the phone records the answer and the sweep (A15, S7)', async (t) => {
  const world = await household(t);
  await ring(world);
  await world.get('handset').endpoint.calls.answer();
  await waitUntil(() => world.get('phone').endpoint.calls.siblingCallsSnapshot().length > 0, 5000, 'the phone knows the handset call');
  await sleep(200); // audio flows both ways before the sweep
  await world.get('phone').endpoint.calls.pull({ from: 'handset' });
  await waitUntil(() => world.get('intercom').endpoint.calls.snapshot()?.peer.endpointId === 'phone', 5000, 'the intercom talks to the phone');
  await sleep(300);
  await world.get('phone').endpoint.calls.hangup('done');
  await recordsReach(world, 'phone');
  const [record, ...more] = await historyOf(world, 'phone');
  t.equal(more.length, 0, 'one record');
  t.match(record, { outcome: 'answered', answeredBy: HANDSET });
  t.equal(record!.sweeps.length, 1, 'one sweep');
  t.match(record!.sweeps[0], { from: HANDSET, to: PHONE });
  t.ok(record!.answeredMs! <= record!.sweeps[0]!.ms && record!.sweeps[0]!.ms <= record!.durationMs, 'answer, sweep and end in order');
});

void t.test('history.report for an account the reporter may not call, or naming another door, is refused FORBIDDEN and shown to nobody (A15)', async (t) => {
  const world = await household(t, {
    accounts: [{ name: 'bob', displayName: 'Bob (flat 5)' }],
    endpoints: [{ id: 'bob-desk', account: 'bob', kind: 'deskphone', label: "Bob's desk", frequencyHz: 1100 }],
  });
  const forged: CallRecord = { sessionId: 'forged1', account: 'alice', door: { endpointId: 'bob-desk', label: 'Front door intercom' }, caller: 'Alice (flat 4)', startedAt: Date.now(), rang: [HANDSET], sweeps: [], outcome: 'missed', durationMs: 1000 };
  const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: SweepError) => `${e.code}: ${e.message}`);
  t.match(await code(world.get('bob-desk').endpoint.access.request('history.report', { record: forged })), /^FORBIDDEN: .*record\.account: "alice" is not an account bob may call/, 'not a buddy of alice');
  t.match(await code(world.get('intercom').endpoint.access.request('history.report', { record: forged })), /^FORBIDDEN: .*record\.door\.endpointId: "bob-desk" is not the reporting endpoint "intercom"/, 'another door');
  t.match(await code(world.get('intercom').endpoint.access.request('history.report', { record: { ...forged, door: DOOR, durationMs: -1 } })), /^INVALID_MESSAGE: .*durationMs/, 'a bad field is named');
  t.same(await historyOf(world, 'handset'), [], 'nothing was stored for alice');

  // The door's own record of a bob call is refused too: door and bob are no buddies.
  t.match(await code(world.get('intercom').endpoint.access.request('history.report', { record: { ...forged, account: 'bob', door: DOOR } })), /^FORBIDDEN: .*"bob" is not an account door may call/);
  const real = { ...forged, sessionId: 'real1', door: DOOR };
  t.same(await world.get('intercom').endpoint.access.request('history.report', { record: real }), { stored: true });
  t.same(await world.get('intercom').endpoint.access.request('history.report', { record: real }), { stored: false }, 'a record sent again is stored once');
  t.equal((await historyOf(world, 'handset')).length, 1, 'alice sees the real one');
  t.same(await historyOf(world, 'bob-desk'), [], 'bob sees none of alice\'s calls');
});

void t.test('records older than the retention (default 90 days) are deleted when the next one is reported, and one reported that old is not stored (A15)', async (t) => {
  const world = await household(t);
  const intercom = world.get('intercom').endpoint.access;
  const DAY = 24 * 3600_000;
  const record = (sessionId: string, ageDays: number): CallRecord => ({ sessionId, account: 'alice', door: DOOR, caller: 'Alice (flat 4)', startedAt: Date.now() - ageDays * DAY, rang: [HANDSET], sweeps: [], outcome: 'missed', durationMs: 1000 });
  t.same(await intercom.request('history.report', { record: record('too-old', 91) }), { stored: false }, 'a report older than the retention is not kept');
  // A record stored while it was young enough, now aged past the retention:
  await world.server.store.addCallRecord({ doorEndpoint: 'intercom', sessionId: 'aged', account: 'alice', callerAccount: 'door', startedAt: Date.now() - 95 * DAY, record: JSON.stringify(record('aged', 95)) });
  t.same(await intercom.request('history.report', { record: record('recent', 89) }), { stored: true });
  t.same((await historyOf(world, 'handset')).map((r) => r.sessionId), ['recent'], 'the aged record went with the next report');
});
