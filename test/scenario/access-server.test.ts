import t, { type Test } from 'tap';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { AccessServer, type AccessServerOptions } from '../../server/access-server.ts';
import { hashPassword } from '../../server/passwords.ts';
import { verifyCertificate } from '../../platform/certificate.ts';
import { publicKeyFromRaw } from '../../platform/token.ts';
import type { EndpointInfo } from '../../core/protocol/common.ts';
import type { SignalIn } from '../../core/protocol/access.ts';
import { silentLogger } from '../../platform/log.ts';
import { fakeEndpointKeys } from '../helpers/endpoint-keys.ts';
import { PASSWORDS, onlineClient, testClient } from '../helpers/access-clients.ts';
import type { LoadFigures } from '../../server/load-monitor.ts';

const log = silentLogger();

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-access-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** alice and bob are buddies; carol is a stranger to both. */
async function startServer(t: Test, opts: Partial<AccessServerOptions> = {}): Promise<AccessServer> {
  const server = await AccessServer.start({ dataDir: opts.dataDir ?? tempDir(t), port: 0, log, ...opts });
  t.teardown(() => server.close());
  if ((await server.store.listAccounts()).length === 0) {
    for (const [name, pw] of Object.entries(PASSWORDS)) await server.store.createAccount(name, name.toUpperCase(), await hashPassword(pw));
    await server.store.addBuddies('alice', 'bob');
  }
  return server;
}


function collect<T>(subscribe: (fn: (v: T) => void) => unknown): T[] {
  const seen: T[] = [];
  subscribe((v) => seen.push(v));
  return seen;
}

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A raw socket for sending what a well-behaved client never would. */
async function rawSocket(t: Test, server: AccessServer): Promise<{ ws: WebSocket; inbox: unknown[]; closed: Promise<number> }> {
  const ws = new WebSocket(server.url);
  const inbox: unknown[] = [];
  ws.on('message', (d: Buffer) => inbox.push(JSON.parse(d.toString())));
  ws.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  t.teardown(() => ws.terminate());
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { ws, inbox, closed };
}

void t.test('login with good credentials returns profile with siblings and buddies and a certificate that verifies', async (t) => {
  const server = await startServer(t);
  await onlineClient(t, server, 'bob', 'b1');
  await onlineClient(t, server, 'carol', 'c1');
  await onlineClient(t, server, 'alice', 'a1');
  const keys = fakeEndpointKeys();
  const a2 = testClient(t, server, 'alice', 'a2', { ...keys, kind: 'phone', label: 'Alice phone' });
  const profiles = collect(a2.onProfile.bind(a2));
  const result = await a2.start();
  t.equal(a2.state, 'online');
  t.same(result.profile.siblings, [{ endpointId: 'a1', account: 'alice', kind: 'deskphone', label: 'a1 label', online: true }]);
  t.same(result.profile.buddies, [{ account: 'bob', displayName: 'BOB', endpoints: [{ endpointId: 'b1', account: 'bob', kind: 'deskphone', label: 'b1 label', online: true }] }]);
  t.equal(result.profile.displayName, 'ALICE');
  const cert = verifyCertificate(result.certificate, publicKeyFromRaw(server.publicKeyRaw), Date.now());
  t.match(cert, { v: 1, account: 'alice', endpointId: 'a2', kind: 'phone', label: 'Alice phone', signingKey: keys.signingKeyRaw, dtlsFingerprint: keys.dtlsFingerprint });
  t.ok(cert.expiresAt - cert.issuedAt === 24 * 3600_000, 'default lifetime 24 h');
  t.equal(a2.certificate, result.certificate);
  await until('profile event', () => profiles.length === 1);
});

void t.test('start with a wrong or unknown password rejects UNAUTHORIZED without saying which', async (t) => {
  const server = await startServer(t);
  const wrong = testClient(t, server, 'alice', 'a1', { password: 'nope' });
  await t.rejects(wrong.start(), { code: 'UNAUTHORIZED', message: 'login: username or password is wrong' });
  t.equal(wrong.state, 'idle', 'failing to start leaves the client idle, not reconnecting');
  const unknown = testClient(t, server, 'mallory', 'm1', { password: 'nope' });
  await t.rejects(unknown.start(), { code: 'UNAUTHORIZED', message: 'login: username or password is wrong' });
});

void t.test('start after too many failed logins rejects RATE_LIMITED with retry-after, even with the right password', async (t) => {
  const server = await startServer(t, { rateLimit: { perUsername: { maxFailures: 3, windowMs: 60_000 } } });
  for (let i = 0; i < 3; i++) {
    await t.rejects(testClient(t, server, 'alice', 'a1', { password: 'guess' }).start(), { code: 'UNAUTHORIZED' });
  }
  await t.rejects(testClient(t, server, 'alice', 'a1').start(), { code: 'RATE_LIMITED', message: /retry after \d+ s/ });
  await onlineClient(t, server, 'bob', 'b1'); // other accounts are unaffected
});

void t.test('start with an unreachable server rejects OFFLINE', async (t) => {
  const server = await startServer(t);
  const c = testClient(t, server, 'alice', 'a1', { url: server.url.replace('/access', '/nowhere') });
  await t.rejects(c.start(), { code: 'OFFLINE' });
});

void t.test('start with another server key rejects UNAUTHORIZED: the certificate does not verify', async (t) => {
  const server = await startServer(t);
  const other = fakeEndpointKeys().signingKeyRaw;
  await t.rejects(testClient(t, server, 'alice', 'a1', { serverPublicKeyRaw: other }).start(), {
    code: 'UNAUTHORIZED',
    message: /signature does not verify/,
  });
});

void t.test('login and logout push presence to siblings and buddies but not to strangers or self', async (t) => {
  const server = await startServer(t);
  const a1 = await onlineClient(t, server, 'alice', 'a1');
  const b1 = await onlineClient(t, server, 'bob', 'b1');
  const c1 = await onlineClient(t, server, 'carol', 'c1');
  const seen = { a1: collect<EndpointInfo>(a1.onPresence.bind(a1)), b1: collect<EndpointInfo>(b1.onPresence.bind(b1)), c1: collect<EndpointInfo>(c1.onPresence.bind(c1)) };
  const a2 = testClient(t, server, 'alice', 'a2');
  const a2seen = collect<EndpointInfo>(a2.onPresence.bind(a2));
  await a2.start();
  await until('a2 online at a1 and b1', () => seen.a1.length === 1 && seen.b1.length === 1);
  t.match(seen.a1[0], { endpointId: 'a2', account: 'alice', online: true });
  t.match(seen.b1[0], { endpointId: 'a2', online: true });
  t.same(a1.profile?.siblings.map((e) => e.endpointId), ['a2'], 'the sibling list follows presence');
  t.same(b1.profile?.buddies[0]?.endpoints.map((e) => e.endpointId).sort(), ['a1', 'a2']);
  await a2.close();
  await until('a2 offline', () => seen.a1.length === 2 && seen.b1.length === 2);
  t.match(seen.a1[1], { endpointId: 'a2', online: false });
  t.same(a1.profile?.siblings, []);
  await sleep(50);
  t.same(seen.c1, [], 'the stranger heard nothing');
  t.same(a2seen, [], 'no presence about itself');
});

void t.test('signal between same account and between buddies is relayed; to a stranger FORBIDDEN, to an offline endpoint OFFLINE', async (t) => {
  const server = await startServer(t);
  const a1 = await onlineClient(t, server, 'alice', 'a1');
  const a2 = await onlineClient(t, server, 'alice', 'a2');
  const b1 = await onlineClient(t, server, 'bob', 'b1');
  const c1 = await onlineClient(t, server, 'carol', 'c1');
  const got = { a2: collect<SignalIn>(a2.onSignal.bind(a2)), b1: collect<SignalIn>(b1.onSignal.bind(b1)), c1: collect<SignalIn>(c1.onSignal.bind(c1)) };
  const a1got = collect<SignalIn>(a1.onSignal.bind(a1));
  await a1.signal('a2', { kind: 'connect', linkId: 'L1' });
  await b1.signal('a1', { kind: 'offer', linkId: 'L2', sdp: 'v=0' });
  await a1.signal('b1', { kind: 'answer', linkId: 'L2', sdp: 'v=0 answer' });
  await until('signals', () => got.a2.length === 1 && got.b1.length === 1);
  t.same(got.a2[0], { from: 'a1', fromAccount: 'alice', payload: { kind: 'connect', linkId: 'L1' } });
  t.same(got.b1[0], { from: 'a1', fromAccount: 'alice', payload: { kind: 'answer', linkId: 'L2', sdp: 'v=0 answer' } });
  await t.rejects(a1.signal('c1', { kind: 'connect', linkId: 'L3' }), { code: 'FORBIDDEN', message: /"c1" is neither of account "alice" nor of a buddy/ });
  await t.rejects(c1.signal('a1', { kind: 'connect', linkId: 'L4' }), { code: 'FORBIDDEN' });
  await t.rejects(a1.signal('ghost', { kind: 'connect', linkId: 'L5' }), { code: 'OFFLINE', message: /"ghost" is not online/ });
  await sleep(30);
  t.same(got.c1, [], 'nothing reached the stranger');
  t.same(a1got, [{ from: 'b1', fromAccount: 'bob', payload: { kind: 'offer', linkId: 'L2', sdp: 'v=0' } }], 'only the buddy\'s offer reached a1, nothing from the stranger');
});

void t.test('malformed messages get errors naming the problem and the server stays up', async (t) => {
  const server = await startServer(t);
  const { ws, inbox } = await rawSocket(t, server);
  ws.send('{not json');
  await until('error note', () => inbox.length === 1);
  t.same(inbox[0], { kind: 'note', type: 'error', body: { code: 'INVALID_MESSAGE', message: 'message: not valid JSON' } });
  ws.send(JSON.stringify({ kind: 'req', id: 'r1', type: 'teleport', body: {} }));
  await until('unknown type', () => inbox.length === 2);
  t.match(inbox[1], { kind: 'res', id: 'r1', status: 'error', error: { code: 'UNKNOWN_TYPE', message: /unknown request type "teleport"/ } });
  ws.send(JSON.stringify({ kind: 'req', id: 'r2', type: 'signal', body: { to: 'a1', payload: { kind: 'connect', linkId: 'x' } } }));
  await until('before login', () => inbox.length === 3);
  t.match(inbox[2], { id: 'r2', status: 'error', error: { code: 'UNAUTHORIZED', message: /"signal" needs a login first/ } });
  const keys = fakeEndpointKeys();
  const login = { username: 'alice', password: 'alice-pw-1', endpointId: 'Bad Id!', kind: 'deskphone', label: '', ...keys, signingKey: keys.signingKeyRaw };
  delete (login as Record<string, unknown>).signingKeyRaw;
  ws.send(JSON.stringify({ kind: 'req', id: 'r3', type: 'login', body: login }));
  await until('bad login', () => inbox.length === 4);
  t.match(inbox[3], { id: 'r3', status: 'error', error: { code: 'INVALID_MESSAGE', message: /login: endpointId: an endpoint id/ } });
  ws.send(JSON.stringify({ kind: 'req', id: 'r4', type: 'login', body: { ...login, endpointId: 'a1', extra: 1 } }));
  await until('extra key', () => inbox.length === 5);
  t.match(inbox[4], { id: 'r4', status: 'error', error: { code: 'INVALID_MESSAGE', message: /extra/ } });
  ws.send(JSON.stringify({ kind: 'bogus' }));
  await until('bad envelope', () => inbox.length === 6);
  t.match(inbox[5], { type: 'error', body: { code: 'INVALID_MESSAGE' } });

  const big = await rawSocket(t, server);
  big.ws.send('x'.repeat(17 * 1024));
  t.equal(await big.closed, 1009, 'an oversized message closes that socket with 1009 (message too big)');

  const health = await fetch(`${server.httpUrl}/health`);
  t.equal(health.status, 200);
  t.same(await health.json(), { ok: true });
  await onlineClient(t, server, 'alice', 'a1');
});

void t.test('login with the same endpoint id kicks the older connection; another account using it is FORBIDDEN (A10)', async (t) => {
  const server = await startServer(t);
  const b1 = await onlineClient(t, server, 'bob', 'b1');
  const bobSeen = collect<EndpointInfo>(b1.onPresence.bind(b1));
  const old = await onlineClient(t, server, 'alice', 'a1');
  const kicked = collect<string>(old.onKicked.bind(old));
  const changes = collect<boolean>(old.onConnectionChange.bind(old));
  const fresh = await onlineClient(t, server, 'alice', 'a1');
  await until('kicked', () => kicked.length === 1);
  t.match(kicked[0], /replaced by a newer login/);
  t.equal(old.state, 'kicked');
  t.same(changes, [false]);
  await t.rejects(old.signal('b1', { kind: 'connect', linkId: 'x' }), { code: 'OFFLINE' });
  await sleep(100);
  t.equal(old.state, 'kicked', 'a kicked client does not reconnect');
  t.equal(fresh.state, 'online');
  await fresh.signal('b1', { kind: 'connect', linkId: 'y' });
  t.notOk(bobSeen.some((e) => !e.online), 'the buddy never saw a1 go offline');
  await t.rejects(testClient(t, server, 'carol', 'a1').start(), { code: 'FORBIDDEN', message: /endpointId: "a1" belongs to another account/ });
});

void t.test('client after the server restarts on the same port and data dir reconnects and logs in again', async (t) => {
  const dataDir = tempDir(t);
  const first = await startServer(t, { dataDir });
  const port = Number(new URL(first.url).port);
  const client = testClient(t, first, 'alice', 'a1');
  const profiles = collect(client.onProfile.bind(client));
  const changes = collect<boolean>(client.onConnectionChange.bind(client));
  const cert1 = (await client.start()).certificate;
  await first.close();
  await until('disconnect', () => changes.length === 2);
  t.same(changes, [true, false]);
  t.equal(client.state, 'reconnecting');
  await sleep(100); // a few failed attempts against a closed port
  const second = await startServer(t, { dataDir, port });
  t.equal(second.publicKeyRaw, first.publicKeyRaw, 'the server key persists in the data dir');
  await until('reconnected', () => profiles.length === 2, 5000);
  t.same(changes, [true, false, true]);
  t.equal(client.state, 'online');
  t.not(client.certificate, cert1, 'a fresh certificate');
  const b1 = await onlineClient(t, second, 'bob', 'b1');
  t.same(b1.profile?.buddies[0]?.endpoints.map((e) => e.endpointId), ['a1']);
});

void t.test('close on a logged-in client logs out (presence offline) and is idempotent', async (t) => {
  const server = await startServer(t);
  const a1 = await onlineClient(t, server, 'alice', 'a1');
  const seen = collect<EndpointInfo>(a1.onPresence.bind(a1));
  const a2 = await onlineClient(t, server, 'alice', 'a2');
  await Promise.all([a2.close(), a2.close()]);
  t.equal(a2.state, 'closed');
  await until('offline', () => seen.some((e) => e.endpointId === 'a2' && !e.online));
  await t.rejects(a2.start(), { code: 'BAD_STATE' });
  await until('socket gone', () => server.connectionCount === 1);
});

void t.test('a socket that never logs in is closed after the login timeout', async (t) => {
  const server = await startServer(t, { loginTimeoutMs: 50 });
  const { closed } = await rawSocket(t, server);
  t.equal(await closed, 4002);
});

void t.test('GET serves the web client files safely and /health answers', async (t) => {
  const webRoot = tempDir(t);
  writeFileSync(join(webRoot, 'index.html'), '<!doctype html><title>sweep</title>');
  mkdirSync(join(webRoot, 'assets'));
  writeFileSync(join(webRoot, 'assets', 'app.js'), 'export {};');
  writeFileSync(join(webRoot, '.secret'), 'no');
  const outside = tempDir(t);
  writeFileSync(join(outside, 'private.txt'), 'no');
  symlinkSync(join(outside, 'private.txt'), join(webRoot, 'link.txt'));
  const server = await startServer(t, { webRoot });
  const get = (p: string): Promise<Response> => fetch(`${server.httpUrl}${p}`);
  const index = await get('/');
  t.equal(index.status, 200);
  t.match(index.headers.get('content-type'), /^text\/html/);
  t.match(await index.text(), /<title>sweep/);
  const js = await get('/assets/app.js');
  t.match(js.headers.get('content-type'), /^text\/javascript/);
  await js.text();
  for (const bad of ['/../package.json', '/%2e%2e/%2e%2e/package.json', '/assets/..%2f..%2fpackage.json', '/.secret', '/missing.txt', '/link.txt']) {
    const r = await get(bad);
    t.equal(r.status, 404, `${bad} is not served`);
    await r.text();
  }
  const post = await fetch(`${server.httpUrl}/health`, { method: 'POST' });
  t.equal(post.status, 405);
  await post.text();
});

void t.test('GET /health/load names the node and counts its sockets and logins, with its memory and loop delay', async (t) => {
  const server = await startServer(t);
  await onlineClient(t, server, 'alice', 'a1');
  await onlineClient(t, server, 'bob', 'b1');
  const res = await fetch(`${server.httpUrl}/health/load`);
  t.equal(res.status, 200);
  t.equal(res.headers.get('cache-control'), 'no-store');
  const load = (await res.json()) as LoadFigures;
  t.match(load, { node: server.nodeId, sockets: 2, endpoints: 2, loginsRefusedBusy: 0, passwordChecksRefusedBusy: 0 });
  t.ok(load.rssMb > 10 && load.heapUsedMb > 1, `memory in MB (${load.rssMb} RSS, ${load.heapUsedMb} heap)`);
  const d = load.loopDelayMs;
  t.ok([d.p50, d.p99, d.max, d.windowMs].every((n) => Number.isFinite(n) && n >= 0) && d.p50 <= d.p99 && d.p99 <= d.max, `loop delay ${JSON.stringify(d)}`);
});

void t.test('a socket that stops answering pings is dropped within two heartbeat intervals; one that answers stays', async (t) => {
  const server = await startServer(t, { heartbeatMs: 200 });
  const quiet = new WebSocket(server.url, { autoPong: false });
  const chatty = new WebSocket(server.url);
  t.teardown(() => {
    quiet.terminate();
    chatty.terminate();
  });
  const closed = new Promise<number>((resolve) => quiet.on('close', () => resolve(Date.now())));
  await Promise.all([quiet, chatty].map((ws) => new Promise((r) => ws.once('open', r))));
  const openedAt = Date.now();
  const gone = await closed;
  t.ok(gone - openedAt <= 2 * 200 + 150, `dropped after ${gone - openedAt} ms`);
  await sleep(450);
  t.equal(chatty.readyState, WebSocket.OPEN, 'the socket that answers is kept');
});
