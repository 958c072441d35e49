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
import { linkSetupThroughRelay } from './cluster-links.ts';

/**
 * `npm run bench -- cluster`: the access server as three nodes on PostgreSQL and NATS beside the
 * embedded single node (SQLite, in-process bus), on loopback; then one node holding 10k endpoints
 * and its restart storm (bench/cluster-scale.ts). Every loop is bounded in count and time;
 * figures are for comparison within one run on a shared machine.
 */
const log = silentLogger();
const SIGNALS = 300;
const PRESENCE_ROUNDS = 40;
const CRASH_ENDPOINTS = 1000;
const PW = 'bench-password-1';
const home = (i: number): string => `home${Math.floor(i / 4)}`;

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
  signalled = undefined;
  const links = await linkSetupThroughRelay({ client: sender, endpointId: `${tag}-a1` }, { client: receiver, endpointId: `${tag}-b1` }, tag);
  await sender.close();
  await receiver.close();
  return { relayP50Ms: round(percentile(relay, 0.5), 2), relayP95Ms: round(percentile(relay, 0.95), 2), presenceP50Ms: round(percentile(presence, 0.5), 1), presenceP95Ms: round(percentile(presence, 0.95), 1), ...links };
}

async function accounts(store: AccessServer['store']): Promise<void> {
  const hash = await hashPassword(PW);
  for (const name of ['alice', 'bob']) await store.createAccount(name, name, hash);
  await store.addBuddies('alice', 'bob');
}

/**
 * SIGKILL a node process holding CRASH_ENDPOINTS endpoints: how long until they are all back on
 * the other two nodes, and until the reaper announces one that cannot come back. While they storm
 * back, a buddy pair on those two nodes keeps measuring presence fan-out (logout → offline note).
 */
async function crash(t: Test, pgUrl: string, natsUrl: string): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-bench-crash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const data = join(dir, 'data');
  const key = await loadOrCreateServerKey(data);
  writeFileSync(join(dir, 'index.html'), '<!doctype html>');
  const args = (n: number): string[] => ['--data', data, '--db', pgUrl, '--bus', natsUrl, '--node-id', `crash-${n}`, '--web', dir];
  const a = await startServerProcess(t, args(0));
  const b = await startServerProcess(t, args(1));
  const c = await startServerProcess(t, args(2));
  const at = (node: { url: string }) => ({ url: node.url, publicKeyRaw: key.publicKeyRaw });
  const watcher = client(at(b), 'bob', 'watcher');
  await watcher.start();
  let goneAt = 0;
  let probeOffline: (() => void) | undefined;
  watcher.onPresence((e) => {
    if (e.endpointId === 'stranded' && !e.online && !goneAt) goneAt = performance.now();
    if (e.endpointId === 'probe' && !e.online) probeOffline?.();
  });
  const stranded = client(at(a), 'alice', 'stranded');
  await stranded.start();
  // Households of 4, as in a building: one account of a thousand endpoints would make every
  // login's profile and presence fan-out a thousand long.
  const fleet: AccessClient[] = [];
  for (let i = 0; i < CRASH_ENDPOINTS; i++) fleet.push(client(at(a), home(i), `f${i}`, [b.url, c.url]));
  // Two at a time, as the Argon2 gate checks them (A11), so none is refused busy.
  for (let i = 0; i < fleet.length; i += 2) await Promise.all(fleet.slice(i, i + 2).map((f) => f.start()));
  const back = new Set<number>();
  fleet.forEach((f, i) => f.onConnectionChange((up) => up && back.add(i)));
  const killedAt = performance.now();
  await a.kill();
  let rehome99 = Number.NaN;
  const stormPresence: number[] = [];
  const storming = (): boolean => {
    if (Number.isNaN(rehome99) && back.size >= Math.ceil(0.99 * fleet.length)) rehome99 = performance.now() - killedAt;
    return back.size < fleet.length && performance.now() - killedAt < 60_000;
  };
  while (storming() && stormPresence.length < 300) {
    const probe = client(at(c), 'alice', 'probe');
    await probe.start().catch(() => undefined);
    const got = arrival((done) => (probeOffline = done));
    const t0 = performance.now();
    await probe.close();
    const seen = await got;
    if (seen !== undefined) stormPresence.push(seen - t0);
  }
  await until(() => !storming(), 60_000);
  await until(() => goneAt > 0, 60_000);
  const result = {
    endpoints: fleet.length,
    rehome99pctMs: round(rehome99, 0),
    rehomedAll: back.size === fleet.length ? 1 : 0,
    deadNodeDetectedMs: goneAt ? round(goneAt - killedAt, 0) : Number.NaN,
    presenceDuringStormRounds: stormPresence.length,
    presenceDuringStormP50Ms: round(percentile(stormPresence, 0.5), 1),
    presenceDuringStormP95Ms: round(percentile(stormPresence, 0.95), 1),
  };
  await Promise.all([...fleet, stranded, watcher].map((f) => f.close()));
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
    const hash = await hashPassword(PW);
    for (let i = 0; i < CRASH_ENDPOINTS; i += 4) await crashStore.createAccount(home(i), home(i), hash);
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
