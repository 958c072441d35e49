import t, { type Test } from 'tap';
import { commandSuite, rig, startDevice, startOperator, type SuiteBroker } from '../helpers/diagnostics-suite.ts';
import { FakeEndpoint } from '../helpers/fake-endpoint.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { freePort, startAedes, type AedesBroker } from '../helpers/mqtt-brokers.ts';
import { inCall, labWorld } from '../helpers/world.ts';
import { waitUntil } from '../../lab/story.ts';
import { startLabDiagnostics } from '../../lab/lab-broker.ts';
import { silentLogger } from '../../platform/log.ts';

async function aedes(t: Test): Promise<SuiteBroker> {
  const b = await startAedes(t);
  return { name: 'aedes', protocolVersion: 4, device: () => ({ url: b.url }), operator: () => ({ url: b.url, protocolVersion: 4 }) };
}

void t.test('diagnostics over aedes (MQTT 3.1.1, correlation id in the payload)', async (t) => {
  commandSuite(t, aedes);
});

void t.test('abrupt disconnect on aedes publishes the will lost, then online with a newer session (Q4)', async (t) => {
  const b = await startAedes(t);
  const broker = await brokerOf(b);
  const r = await rig(t, broker);
  const first = r.diag.session;
  r.seen.clear();
  b.dropClient('sweep-intercom');
  const lost = await r.seen.next((m) => m.topic === 'sweep/intercom/state' && m.json().state === 'lost', 5000, 'will');
  t.equal(lost.json().session, first);
  const online = await r.seen.next((m) => m.topic === 'sweep/intercom/state' && m.json().state === 'online' && (m.json().session as number) > first, 5000, 'online');
  t.equal(online.json().session, r.diag.session);
});

void t.test('startDiagnostics with the broker down resolves at once; the endpoint keeps working and events wait in the bounded outbox', async (t) => {
  const port = await freePort();
  const endpoint = new FakeEndpoint();
  const broker: SuiteBroker = { name: 'aedes', protocolVersion: 4, device: () => ({ url: `mqtt://127.0.0.1:${port}` }), operator: () => ({ url: `mqtt://127.0.0.1:${port}`, protocolVersion: 4 }) };
  const started = Date.now();
  const { diag } = await startDevice(t, broker, { endpoint, config: { outboxSize: 3 } });
  t.ok(Date.now() - started < 500, 'did not wait for the broker');
  t.equal(diag.connected, false);
  for (let i = 0; i < 5; i++) endpoint.bus.emit('access.state', { connected: true });
  t.equal(diag.outboxSize, 3, 'bounded');
  const b = await startAedes(t, {}, port);
  const { op, seen } = await startOperator(t, broker);
  await op.subscribe(['sweep/intercom/event/#']);
  void b;
  const dropped = await seen.next((m) => m.topic === 'sweep/intercom/event/diagnostics.dropped', 5000, 'dropped notice');
  t.match(dropped.json(), { data: { events: 2 } }, 'the two oldest were dropped and counted');
  await seen.next((m) => m.json().seq === 5, 3000, 'newest event');
  t.same(seen.seen.filter((m) => m.topic.endsWith('access.connected')).map((m) => m.json().seq), [3, 4, 5]);
});

void t.test('startDiagnostics with an unreadable password file rejects INVALID_CONFIG naming the field', async (t) => {
  const b = await startAedes(t);
  const err = await startDevice(t, await brokerOf(b), { config: { passwordFile: '/nonexistent/pw', username: 'x' } }).catch((e: unknown) => e);
  t.match(err, { code: 'INVALID_CONFIG', message: /diagnostics\.passwordFile: cannot read \/nonexistent\/pw/ });
});

void t.test('shell when disabled (the default) is refused FORBIDDEN even when signed', async (t) => {
  const r = await rig(t, await brokerOf(await startAedes(t)));
  t.match(await r.op.request('intercom', 'shell', {}, { key: r.key }), { status: 'error', error: { code: 'FORBIDDEN', message: /disabled/ } });
});

void t.test('sweep command on a handset in a call pushes the call to the phone; events carry the timeline', async (t) => {
  const world = await labWorld(t);
  await inCall(world);
  const b = await startAedes(t);
  const broker = await brokerOf(b);
  const handset = world.get('handset').endpoint;
  const listenersBefore = handset.bus.listenerCount();
  const r = await rig(t, broker, { endpoint: handset });
  await r.diag.publishTelemetry();
  const tel = await r.seen.next((m) => m.topic === 'sweep/handset/telemetry' && (m.json().call as { state?: string } | null)?.state === 'active', 3000, 'telemetry in call');
  t.match(tel.json(), { call: { state: 'active', peer: { endpointId: 'intercom' } } });
  const res = await r.op.request('handset', 'sweep', { to: 'phone' }, { key: r.key });
  t.match(res, { status: 'ok', data: { to: 'phone' } });
  const moved = await r.seen.next((m) => m.topic === 'sweep/handset/event/sweep.moved', 5000, 'sweep.moved');
  t.ok((moved.json().data as { timeline: unknown[] }).timeline.length > 0, 'per-step timeline');
  await r.seen.next((m) => m.topic === 'sweep/handset/event/call.ended', 5000, 'call.ended');
  await waitUntil(() => world.get('phone').endpoint.calls.snapshot()?.state === 'active', 3000, 'phone active');
  await r.diag.close();
  t.equal(handset.bus.listenerCount(), listenersBefore, 'close removed the diagnostics listeners');
});

async function brokerOf(b: AedesBroker): Promise<SuiteBroker> {
  return { name: 'aedes', protocolVersion: 4, device: () => ({ url: b.url }), operator: () => ({ url: b.url, protocolVersion: 4 }) };
}

void t.test('startDiagnostics with a fake clock publishes telemetry every telemetryIntervalMs and stops on close (Q6)', async (t) => {
  const clock = new FakeClock();
  const r = await rig(t, await brokerOf(await startAedes(t)), { config: { telemetryIntervalMs: 10_000 }, deps: { clock } });
  await r.seen.next((m) => m.topic === 'sweep/intercom/telemetry', 3000, 'telemetry on connect');
  r.seen.clear();
  clock.advance(10_000);
  clock.advance(10_000);
  await r.seen.next(() => r.seen.seen.filter((m) => m.topic === 'sweep/intercom/telemetry').length === 2, 3000, 'two samples');
  await r.diag.close();
  t.equal(clock.pending(), 0, 'no timer left');
});

void t.test('startLabDiagnostics on a lab world answers ping from all three endpoints and closes cleanly', async (t) => {
  const world = await labWorld(t);
  const lab = await startLabDiagnostics(world, silentLogger());
  t.teardown(() => lab.close());
  t.match(lab.url, /^mqtt:\/\/127\.0\.0\.1:\d+$/);
  const { op } = await startOperator(t, { name: 'lab', protocolVersion: 4, device: () => ({ url: lab.url }), operator: () => ({ url: lab.url, protocolVersion: 4 }) });
  await waitUntil(() => [...lab.diagnostics.values()].every((d) => d.connected), 5000, 'all connected');
  for (const id of ['intercom', 'handset', 'phone']) t.match(await op.request(id, 'ping'), { status: 'ok', data: { deviceId: id } }, id);
  const before = world.get('handset').endpoint.bus.listenerCount();
  await lab.close();
  t.ok(world.get('handset').endpoint.bus.listenerCount() < before, 'listeners removed');
});

void t.test('commands beyond the in-flight limit are answered BUSY, not queued', async (t) => {
  const r = await rig(t, await brokerOf(await startAedes(t)));
  const all = await Promise.all(Array.from({ length: 10 }, () => r.op.request('intercom', 'audioSelfTest', { durationMs: 500 })));
  t.equal(all.filter((x) => x.status === 'ok').length, 8);
  t.same(all.filter((x) => x.status === 'error').map((x) => (x.status === 'error' ? x.error.code : '')), ['BUSY', 'BUSY']);
  t.equal((await r.op.request('intercom', 'ping')).status, 'ok', 'answering again');
});
