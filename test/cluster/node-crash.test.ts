import { testClient } from '../helpers/access-clients.ts';
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashPassword } from '../../server/passwords.ts';
import { loadOrCreateServerKey } from '../../server/server-key.ts';
import { migrateStore, openStore } from '../../server/store/open.ts';
import { AccessClient } from '../../runtime/access/access-client.ts';
import type { EndpointInfo } from '../../core/protocol/common.ts';
import type { SignalIn } from '../../core/protocol/access.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { startNats } from '../helpers/nats.ts';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

const PASSWORDS: Record<string, string> = { alice: 'alice-pw-1', bob: 'bob-pw-2' };

async function until(what: string, cond: () => boolean | Promise<boolean>, ms: number): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - start;
}

/** Three `sweep server serve` processes on one PostgreSQL and one NATS; alice and bob are buddies. */
async function processCluster(t: Test): Promise<{ nodes: ServerProcess[]; publicKey: string }> {
  const pg = await startPostgres(t);
  const nats = await startNats(t);
  const dir = mkdtempSync(join(tmpdir(), 'sweep-crash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const data = join(dir, 'data');
  const { publicKeyRaw } = await loadOrCreateServerKey(data);
  writeFileSync(join(dir, 'index.html'), '<!doctype html>');
  const url = await pg.createDatabase('crash');
  await migrateStore({ kind: 'postgres', url });
  const store = await openStore({ kind: 'postgres', url });
  for (const [name, pw] of Object.entries(PASSWORDS)) await store.createAccount(name, name, await hashPassword(pw));
  await store.addBuddies('alice', 'bob');
  await store.close();
  const nodes: ServerProcess[] = [];
  for (let n = 0; n < 3; n++) nodes.push(await startServerProcess(t, ['--data', data, '--db', url, '--bus', nats.url, '--node-id', `node-${n}`, '--web', dir]));
  return { nodes, publicKey: publicKeyRaw };
}

function client(t: Test, urls: string[], publicKey: string, account: string, endpointId: string): AccessClient {
  const [url = '', ...fallbackUrls] = urls;
  return testClient(t, { url, publicKeyRaw: publicKey }, account, endpointId, { fallbackUrls, kind: 'phone', label: endpointId, backoff: { initialMs: 100, maxMs: 1000 } });
}

void t.test('SIGKILL a node: its endpoints log in on the others, the reaper takes the rest offline, relay goes on (DESIGN.md §7)', async (t) => {
  const { nodes, publicKey } = await processCluster(t);
  const [n0, n1, n2] = nodes as [ServerProcess, ServerProcess, ServerProcess];
  // b1 on node 0 follows alice; a1 on node 1 can move (it knows node 2); a2 on node 1 knows no other node.
  const b1 = client(t, [n0.url], publicKey, 'bob', 'b1');
  await b1.start();
  const a1 = client(t, [n1.url, n2.url], publicKey, 'alice', 'a1');
  await a1.start();
  const a2 = client(t, [n1.url], publicKey, 'alice', 'a2');
  await a2.start();
  const seen: EndpointInfo[] = [];
  b1.onPresence((e) => seen.push(e));
  const got: SignalIn[] = [];
  a1.onSignal((s) => got.push(s));
  const a1Connection: boolean[] = [];
  a1.onConnectionChange((up) => a1Connection.push(up));
  await b1.signal('a1', { kind: 'connect', linkId: 'before' });
  await until('the signal before the crash', () => got.length === 1, 10_000);

  await n1.kill();
  const rehomedMs = await until('a1 lost node 1 and logged in on node 2', () => a1Connection.join() === 'false,true', 30_000);
  await until('a signal reaches a1 on its new node', async () => {
    try {
      await b1.signal('a1', { kind: 'connect', linkId: 'after' });
      return true;
    } catch {
      return false;
    }
  }, 30_000);
  await until('the later signal arrived', () => got.some((s) => s.payload.linkId === 'after'), 10_000);
  t.pass(`a1 back online ${rehomedMs} ms after the kill`);
  // a2 had nowhere else to go: the reaper removes node 1's logins once its lease expires.
  const offlineMs = await until('a2 offline at b1', () => seen.some((e) => e.endpointId === 'a2' && !e.online), 45_000);
  t.pass(`a2 announced offline ${offlineMs} ms after the kill`);
  t.notOk(seen.some((e) => e.endpointId === 'a1' && !e.online), 'a1, back on another node, is never announced offline');
  await t.rejects(b1.signal('a2', { kind: 'connect', linkId: 'x' }), { code: 'OFFLINE' });
  const a3 = client(t, [n2.url], publicKey, 'alice', 'a3');
  const profile = (await a3.start()).profile;
  t.same(profile.siblings.map((e) => e.endpointId), ['a1'], 'the store lists a1 on its new node and not the reaped a2');
  const ready = await fetch(`${n0.httpUrl}/health/ready`);
  t.equal(ready.status, 200);
  t.match(await ready.json(), { ready: true, node: 'node-0', store: true, bus: true });
});
