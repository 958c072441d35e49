import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildEndpoint } from '../../lab/child-endpoint.ts';
import { LAB_CAST, World } from '../../lab/world.ts';
import { silentLogger } from '../../platform/log.ts';
import { operatorKey, startOperator } from '../helpers/diagnostics-suite.ts';
import { startAedes } from '../helpers/mqtt-brokers.ts';

void t.test('sweep endpoint with diagnostics configured: online, getLogs, setLogLevel, and a signed restart exits 75', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-diag-proc-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const world = await World.start({ ...LAB_CAST, endpoints: [], log: silentLogger() });
  t.teardown(() => world.close());
  const b = await startAedes(t);
  const key = operatorKey();
  const broker = { name: 'aedes', protocolVersion: 4 as const, device: () => ({ url: b.url }), operator: () => ({ url: b.url, protocolVersion: 4 as const }) };
  const { op, seen } = await startOperator(t, broker);
  await op.subscribe(['sweep/intercom/#']);
  const child = await ChildEndpoint.start(
    {
      endpoint: { id: 'intercom', kind: 'intercom', label: 'Front door intercom' },
      access: { url: world.server.url, serverPublicKey: world.server.publicKeyRaw, username: 'door', password: world.passwords.get('door')! },
      stateDir: join(dir, 'intercom'),
      log: { level: 'info' },
      diagnostics: { url: b.url, protocolVersion: 4, operatorKeys: [key.publicKeyRaw] },
    },
    join(dir, 'intercom.json'),
  );
  t.teardown(() => child.close());
  await seen.next((m) => m.topic === 'sweep/intercom/state' && m.json().state === 'online', 10_000, 'online');
  const logs = await op.request('intercom', 'getLogs', { lines: 50 });
  t.match(logs, { status: 'ok' });
  const lines = (logs as { data: { lines: string[] } }).data.lines.join('\n');
  t.match(lines, /connected to the broker/, 'the runtime’s own log lines');
  t.notMatch(lines, new RegExp(world.passwords.get('door')!), 'no password in the logs');
  t.match(await op.request('intercom', 'setLogLevel', { level: 'debug' }, { key }), { status: 'ok', data: { previous: 'info', level: 'debug' } });
  t.match(await op.request('intercom', 'restart', { reason: 'test' }, { key }), { status: 'ok', data: { exitCode: 75 } });
  t.equal(await child.exited, 75, 'exit code for systemd to restart');
  const off = await seen.next((m) => m.topic === 'sweep/intercom/state' && m.json().state === 'offline', 5000, 'offline');
  t.ok(off, 'said goodbye');
});
