import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessServer, type AccessServerOptions } from '../../server/access-server.ts';
import { hashPassword } from '../../server/passwords.ts';
import { EventBus } from '../../core/bus.ts';
import type { EndpointEvents } from '../../core/session/events.ts';
import type { CallRecord } from '../../core/protocol/history.ts';
import { HistoryReporter } from '../../runtime/access/history-reporter.ts';
import { silentLogger } from '../../platform/log.ts';
import { labWorld } from '../helpers/world.ts';
import { testClient, PASSWORDS } from '../helpers/access-clients.ts';
import { waitForEvent, waitUntil } from '../../lab/story.ts';

/**
 * What a device keeps in its state dir across a restart as systemd does it (the process dies,
 * nothing is said to anyone): do not disturb set by command (H7), and call records still waiting
 * for the access server (A15).
 */
const log = silentLogger();

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

void t.test('do not disturb set by command survives a crash and restart of the handset: the next ring still skips it (H7)', async (t) => {
  const world = await labWorld(t, { ringTimeoutMs: 3000 });
  const handset = world.get('handset');
  handset.endpoint.calls.setDoNotDisturb(true); // what `dnd {on}` over stdio or MQTT does
  await new Promise((r) => setTimeout(r, 100)); // the write is on its way when the power goes
  await handset.endpoint.crash();
  const again = await world.startEndpoint(handset.spec);
  t.equal(again.endpoint.calls.doNotDisturb, true, 'the restarted handset is still set not to ring');
  await waitUntil(() => world.get('intercom').endpoint.householdOf('alice').some((e) => e.endpointId === 'handset'), 8000, 'the handset is back online');
  const skipped = waitForEvent(world.get('intercom').endpoint, 'ring.fork', (e) => e.endpointId === 'handset' && e.state === 'dnd', 8000);
  await world.get('intercom').endpoint.calls.ringAccount('alice');
  await skipped;
  t.pass('the ring skipped the handset as do not disturb');
  again.endpoint.calls.setDoNotDisturb(false);
  await world.get('intercom').endpoint.calls.hangup('test over').catch(() => undefined);
  await new Promise((r) => setTimeout(r, 100));
  await again.endpoint.crash();
  t.equal((await world.startEndpoint(handset.spec)).endpoint.calls.doNotDisturb, false, 'cleared, and that survives too');
});

void t.test('an unreadable do-not-disturb file is set aside and named in the log; the config value applies (H7)', async (t) => {
  const world = await labWorld(t);
  const handset = world.get('handset');
  await handset.endpoint.crash();
  const file = join(world.dir, 'endpoints', 'handset', 'do-not-disturb.json');
  writeFileSync(file, '{"on": "yes"');
  const again = await world.startEndpoint(handset.spec);
  t.equal(again.endpoint.calls.doNotDisturb, false);
  t.match(readFileSync(`${file}.unreadable`, 'utf8'), '{"on": "yes"', 'kept for a look, not lost');
});

async function server(t: Test, dataDir: string, port = 0): Promise<AccessServer> {
  const opts: AccessServerOptions = { dataDir, port, log, webRoot: tmpdir() };
  const s = await AccessServer.start(opts);
  t.teardown(() => s.close());
  if ((await s.store.listAccounts()).length === 0) {
    for (const name of ['alice', 'bob']) await s.store.createAccount(name, name, await hashPassword(PASSWORDS[name]!));
    await s.store.addBuddies('alice', 'bob');
  }
  return s;
}

void t.test('a call record waiting for the access server survives a crash of the intercom and reaches the server after the restart (A15)', async (t) => {
  const dataDir = tempDir(t);
  const stateDir = tempDir(t);
  const first = await server(t, dataDir);
  const port = Number(new URL(first.url).port);
  const record: CallRecord = { sessionId: 'waited1', account: 'bob', door: { endpointId: 'door-1', label: 'Front door' }, caller: 'Bob', startedAt: Date.now(), rang: [], sweeps: [], outcome: 'missed', durationMs: 1000 };

  const bus = new EventBus<EndpointEvents>();
  const door = testClient(t, first, 'alice', 'door-1');
  await door.start();
  const reporter = new HistoryReporter(bus, door, log, stateDir);
  await first.close(); // the access server is out of reach when the call ends
  await waitUntil(() => door.state !== 'online', 5000, 'the door sees the server gone');
  bus.emit('call.record', { record });
  await new Promise((r) => setTimeout(r, 200));
  void reporter; // the intercom dies here: nothing is closed or flushed
  await door.close();

  const second = await server(t, dataDir, port);
  t.same(await second.store.callRecordsFor('bob', 10), [], 'not there yet');
  const bus2 = new EventBus<EndpointEvents>();
  const door2 = testClient(t, second, 'alice', 'door-1');
  const reporter2 = new HistoryReporter(bus2, door2, log, stateDir);
  t.teardown(() => reporter2.close());
  await door2.start();
  bus2.emit('access.state', { connected: true });
  for (const deadline = Date.now() + 8000; Date.now() < deadline && (await second.store.callRecordsFor('bob', 10)).length === 0; ) await new Promise((r) => setTimeout(r, 50));
  t.same((await second.store.callRecordsFor('bob', 10)).map((r) => r.sessionId), ['waited1'], 'stored after the restart');
});
