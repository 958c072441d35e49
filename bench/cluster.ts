import type { Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, sign } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AccessServer } from '../server/access-server.ts';
import { hashPassword } from '../server/passwords.ts';
import { loadOrCreateServerKey } from '../server/server-key.ts';
import { migrateStore, openStore } from '../server/store/open.ts';
import { AccessClient } from '../runtime/access/access-client.ts';
import { rawPublicKey } from '../platform/token.ts';
import { silentLogger } from '../platform/log.ts';
import { startPostgres } from '../test/helpers/postgres.ts';
import { startNats } from '../test/helpers/nats.ts';
import { startCluster } from '../test/helpers/cluster.ts';
import { startServerProcess } from '../test/helpers/server-process.ts';
import { percentile, round } from './stats.ts';
import { tenThousand } from './cluster-scale.ts';

/**
 * `npm run bench -- cluster`: the access server as three nodes on PostgreSQL and NATS beside the
 * embedded single node (SQLite, in-process bus), on loopback; then one node holding 10k endpoints
 * and its restart storm (bench/cluster-scale.ts). Every loop is bounded in count and time;
 * figures are for comparison within one run on a shared machine.
 */
const log = silentLogger();
const SIGNALS = 300;
const PRESENCE_ROUNDS = 40;
const CRASH_ENDPOINTS = 200;
const PW = 'bench-password-1';

/** The test helpers' teardown, run in reverse at the end. */
function scope(): { t: Test; end: () => Promise<void> } {
  const fns: Array<() => unknown> = [];
  return {
    t: { teardown: (fn: () => unknown) => void fns.push(fn) } as unknown as Test,
    end: async () => {
      for (const fn of fns.reverse()) await fn();
    },
  };
}

function client(server: AccessServer | { url: string; publicKeyRaw: string }, account: string, endpointId: string, fallbackUrls: string[] = []): AccessClient {
  const { privateKey } = generateKeyPairSync('ed25519');
  return new AccessClient({
    url: server.url,
    fallbackUrls,
    username: account,
    password: PW,
    endpointId,
    kind: 'phone',
    label: endpointId,
    signingKeyRaw: rawPublicKey(privateKey),
    dtlsFingerprint: `sha-256 ${Array.from({ length: 32 }, () => 'AB').join(':')}`,
    serverPublicKeyRaw: server.publicKeyRaw,
    log,
    backoff: { initialMs: 100, maxMs: 2000 },
    requestTimeoutMs: 15_000,
    signProof: (text) => sign(null, Buffer.from(text), privateKey).toString('base64url'),
  });
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/** Resolves with the time `arm`'s callback was called, or undefined after 5 s. */
function arrival(arm: (done: () => void) => void): Promise<number | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 5000);
    arm(() => {
      clearTimeout(timer);
      resolve(performance.now());
    });
  });
}

/** Relay one-way latency (signal sent → delivered) and presence fan-out between `from` and `to`. */
async function measure(from: AccessServer, to: AccessServer, tag: string): Promise<Record<string, number>> {
  const sender = client(from, 'alice', `${tag}-a1`);
  const receiver = client(to, 'bob', `${tag}-b1`);
  await sender.start();
  await receiver.start();
  // Each figure is taken when the receiving client's listener runs (no polling in between).
  let signalled: (() => void) | undefined;
  receiver.onSignal(() => signalled?.());
  const relay: number[] = [];
  for (let i = 0; i < SIGNALS; i++) {
    const t0 = performance.now();
    const got = arrival((done) => (signalled = done));
    await sender.signal(`${tag}-b1`, { kind: 'connect', linkId: `L${i}` });
    const at = await got;
    if (at === undefined) break;
    relay.push(at - t0);
  }
  let offline: (() => void) | undefined;
  receiver.onPresence((e) => {
    if (e.endpointId === `${tag}-a2` && !e.online) offline?.();
  });
  const presence: number[] = [];
  for (let i = 0; i < PRESENCE_ROUNDS; i++) {
    const a2 = client(from, 'alice', `${tag}-a2`);
    await a2.start();
    const got = arrival((done) => (offline = done));
    const t0 = performance.now();
    await a2.close();
    const at = await got;
    if (at === undefined) break;
    presence.push(at - t0);
  }
  await sender.close();
  await receiver.close();
  return { relayP50Ms: round(percentile(relay, 0.5), 2), relayP95Ms: round(percentile(relay, 0.95), 2), presenceP50Ms: round(percentile(presence, 0.5), 1), presenceP95Ms: round(percentile(presence, 0.95), 1) };
}

async function accounts(store: AccessServer['store']): Promise<void> {
  const hash = await hashPassword(PW);
  for (const name of ['alice', 'bob', 'fleet']) await store.createAccount(name, name, hash);
  await store.addBuddies('alice', 'bob');
}

/** SIGKILL a node process holding CRASH_ENDPOINTS endpoints: how long until they are all back on the other node, and until the reaper announces one that cannot come back. */
async function crash(t: Test, pgUrl: string, natsUrl: string): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-bench-crash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const data = join(dir, 'data');
  const key = await loadOrCreateServerKey(data);
  writeFileSync(join(dir, 'index.html'), '<!doctype html>');
  const args = (n: number): string[] => ['--data', data, '--db', pgUrl, '--bus', natsUrl, '--node-id', `crash-${n}`, '--web', dir];
  const a = await startServerProcess(t, args(0));
  const b = await startServerProcess(t, args(1));
  const watcher = client({ url: b.url, publicKeyRaw: key.publicKeyRaw }, 'bob', 'watcher');
  await watcher.start();
  let goneAt = 0;
  watcher.onPresence((e) => {
    if (e.endpointId === 'stranded' && !e.online && !goneAt) goneAt = performance.now();
  });
  const stranded = client({ url: a.url, publicKeyRaw: key.publicKeyRaw }, 'alice', 'stranded');
  await stranded.start();
  const fleet: AccessClient[] = [];
  for (let i = 0; i < CRASH_ENDPOINTS; i++) fleet.push(client({ url: a.url, publicKeyRaw: key.publicKeyRaw }, 'fleet', `f${i}`, [b.url]));
  // Fewer at once than the per-username limit (A11 counts logins in flight).
  for (let i = 0; i < fleet.length; i += 4) await Promise.all(fleet.slice(i, i + 4).map((c) => c.start()));
  const back = new Set<number>();
  fleet.forEach((c, i) => c.onConnectionChange((up) => up && back.add(i)));
  const killedAt = performance.now();
  await a.kill();
  let rehome99 = Number.NaN;
  await until(() => {
    if (Number.isNaN(rehome99) && back.size >= Math.ceil(0.99 * fleet.length)) rehome99 = performance.now() - killedAt;
    return back.size === fleet.length;
  }, 60_000);
  await until(() => goneAt > 0, 60_000);
  const result = { endpoints: fleet.length, rehome99pctMs: round(rehome99, 0), rehomedAll: back.size === fleet.length ? 1 : 0, deadNodeDetectedMs: goneAt ? round(goneAt - killedAt, 0) : Number.NaN };
  await Promise.all([...fleet, stranded, watcher].map((c) => c.close()));
  return result;
}

export async function run(): Promise<Record<string, unknown>> {
  const { t, end } = scope();
  try {
    const pg = await startPostgres(t);
    const nats = await startNats(t);
    const dir = mkdtempSync(join(tmpdir(), 'sweep-bench-single-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const single = await AccessServer.start({ dataDir: dir, port: 0, log });
    t.teardown(() => single.close());
    await accounts(single.store);
    const cluster = await startCluster(t, pg, nats, 3, { log });
    await accounts(cluster.nodes[0]!.store);
    const singleNode = await measure(single, single, 's');
    const sameNode = await measure(cluster.nodes[0]!, cluster.nodes[0]!, 'c0');
    const crossNode = await measure(cluster.nodes[0]!, cluster.nodes[1]!, 'c1');
    const crashUrl = await pg.createDatabase('crash');
    await migrateStore({ kind: 'postgres', url: crashUrl });
    const crashStore = await openStore({ kind: 'postgres', url: crashUrl });
    await accounts(crashStore);
    await crashStore.close();
    const deadNode = await crash(t, crashUrl, nats.url);
    // Last: the fleet lowers this process's CPU priority (bench/cluster-scale.ts).
    const tenK = await tenThousand(t);
    return {
      singleNode,
      clusterSameNode: sameNode,
      clusterCrossNode: crossNode,
      crossNodeHopAddedP95Ms: round((crossNode.relayP95Ms ?? 0) - (sameNode.relayP95Ms ?? 0), 2),
      deadNode,
      tenK,
    };
  } finally {
    await end();
  }
}
