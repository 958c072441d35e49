import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { WebSocket } from 'ws';
import { AccessServer, type AccessServerOptions } from '../../server/access-server.ts';
import { hashPassword } from '../../server/passwords.ts';
import { silentLogger } from '../../platform/log.ts';
import { fakeEndpointKeys } from '../helpers/endpoint-keys.ts';
import { LoginGate } from '../../server/login-gate.ts';
import { openAccessSocket } from '../../runtime/access/access-socket.ts';
import { handshakeRefusal } from '../../core/protocol/access.ts';

// Issue 12, item 5: parallel logins must not bypass the password rate limit (A2, A11).

const log = silentLogger();

async function start(t: Test, over: Partial<AccessServerOptions> = {}): Promise<AccessServer> {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-limits-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const server = await AccessServer.start({ dataDir: dir, port: 0, log, webRoot: dir, ...over });
  t.teardown(() => server.close());
  await server.store.createAccount('alice', 'Alice', await hashPassword('alice-pw'));
  await server.store.createAccount('bob', 'Bob', await hashPassword('bob-pw'));
  return server;
}

interface Reply {
  status: string;
  error?: { code: string; message: string };
  /** From sending the login to its answer (the socket was open already). */
  ms: number;
}

/** One login on its own fresh socket; resolves with the reply and closes the socket. */
async function loginOnce(t: Test, server: AccessServer, username: string, password: string, endpointId: string, headers: Record<string, string> = {}): Promise<Reply> {
  const ws = new WebSocket(server.url, { headers });
  t.teardown(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const keys = fakeEndpointKeys();
  const body = { username, password, endpointId, kind: 'deskphone', label: '', signingKey: keys.signingKeyRaw, dtlsFingerprint: keys.dtlsFingerprint };
  const sent = performance.now();
  const reply = await new Promise<Reply>((resolve) => {
    ws.on('message', (raw: Buffer) => {
      const msg = JSON.parse(raw.toString()) as Reply & { kind: string; id?: string };
      if (msg.kind === 'res' && msg.id === 'l1') resolve({ ...msg, ms: performance.now() - sent });
    });
    ws.send(JSON.stringify({ kind: 'req', id: 'l1', type: 'login', body }));
  });
  ws.terminate();
  return reply;
}

void t.test('login from 60 parallel sockets with wrong passwords for one user checks at most the limit (issue 12, A11)', async (t) => {
  const server = await start(t);
  const began = performance.now();
  const burst = Promise.all(Array.from({ length: 60 }, (_, i) => loginOnce(t, server, 'alice', `guess-${i}`, `a${i}`)));
  // A legitimate login of another user during the burst is not queued behind it.
  const bob = await loginOnce(t, server, 'bob', 'bob-pw', 'b1');
  const bobMs = bob.ms;
  const replies = await burst;
  const burstMs = performance.now() - began;
  const count = (code: string): number => replies.filter((r) => r.error?.code === code).length;
  t.comment(`60-socket burst: ${count('UNAUTHORIZED')} passwords checked, ${count('RATE_LIMITED')} refused RATE_LIMITED, ${burstMs.toFixed(0)} ms; bob's login ${bobMs.toFixed(0)} ms; verifies ${server.passwordChecks.checked}`);
  t.equal(bob.status, 'ok', 'another user logs in during the burst');
  t.ok(count('UNAUTHORIZED') <= 5, `at most 5 wrong passwords were checked (got ${count('UNAUTHORIZED')})`);
  t.equal(count('UNAUTHORIZED') + count('RATE_LIMITED'), 60, 'every attempt was answered');
  t.ok(server.passwordChecks.checked <= 6, `Argon2 ran at most 5 + 1 (bob) times (got ${server.passwordChecks.checked})`);
  t.match(replies.find((r) => r.error?.code === 'RATE_LIMITED')?.error?.message, /username "alice"; retry after \d+ s/);
  t.ok(bobMs < 500, `bob's login answered ${bobMs.toFixed(0)} ms after he sent it`);
});

void t.test('login beyond the Argon2 queue is refused RATE_LIMITED "server busy" and checks nothing more (issue 12, A11)', async (t) => {
  const server = await start(t, { passwordChecks: { concurrency: 1, queue: 2 }, rateLimit: { perAddress: { maxFailures: 100, windowMs: 60_000 } } });
  // Different usernames, so the per-username limit does not apply: only the queue bounds the work.
  const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => loginOnce(t, server, `nobody${i}`, 'x', `n${i}`)));
  const busy = replies.filter((r) => r.error?.code === 'RATE_LIMITED');
  t.ok(busy.length >= 5, `at least 5 of 8 were refused busy (got ${busy.length})`);
  t.match(busy[0]?.error?.message, /server busy.*retry after \d+ s/);
  t.ok(server.passwordChecks.checked <= 3, `at most concurrency + queue checks ran (got ${server.passwordChecks.checked})`);
  // A refusal for busy is not a failure: the same names may try again at once.
  const again = await loginOnce(t, server, 'nobody7', 'x', 'n7');
  t.equal(again.error?.code, 'UNAUTHORIZED');
});

void t.test('login with X-Forwarded-For from a trusted proxy is limited per forwarded address (issue 12, A11)', async (t) => {
  const server = await start(t, { trustedProxies: ['127.0.0.1'], rateLimit: { perAddress: { maxFailures: 2, windowMs: 60_000 } } });
  for (const name of ['u1', 'u2']) t.equal((await loginOnce(t, server, name, 'x', 'e1', { 'x-forwarded-for': '198.51.100.7, 203.0.113.5' })).error?.code, 'UNAUTHORIZED');
  const locked = await loginOnce(t, server, 'u3', 'x', 'e1', { 'x-forwarded-for': '203.0.113.5' });
  t.match(locked.error, { code: 'RATE_LIMITED', message: /address 203\.0\.113\.5/ }, 'the rightmost forwarded address is the client');
  const other = await loginOnce(t, server, 'bob', 'bob-pw', 'b1', { 'x-forwarded-for': '203.0.113.6' });
  t.equal(other.status, 'ok', 'another client behind the same proxy is not locked out');
});

void t.test('login with X-Forwarded-For from an untrusted peer ignores the header (issue 12, A11)', async (t) => {
  const server = await start(t, { rateLimit: { perAddress: { maxFailures: 2, windowMs: 60_000 } } });
  t.equal((await loginOnce(t, server, 'u1', 'x', 'e1', { 'x-forwarded-for': '203.0.113.1' })).error?.code, 'UNAUTHORIZED');
  t.equal((await loginOnce(t, server, 'u2', 'x', 'e1', { 'x-forwarded-for': '203.0.113.2' })).error?.code, 'UNAUTHORIZED');
  const locked = await loginOnce(t, server, 'u3', 'x', 'e1', { 'x-forwarded-for': '203.0.113.3' });
  t.match(locked.error, { code: 'RATE_LIMITED', message: /address (::ffff:)?127\.0\.0\.1/ }, 'a forged header does not spread the attempts over addresses');
});

void t.test('a node whose logins are full refuses the WebSocket handshake itself: HTTP 503, Retry-After and the wait; a device reads it as RATE_LIMITED (A17, issue 16)', async (t) => {
  // One login in progress, none may wait: the next is refused before its handshake costs anything.
  const logins = new LoginGate({ concurrency: 1, queue: 0 });
  let release = (): void => undefined;
  const holding = logins.run('test', () => new Promise<string>((r) => (release = () => r('done'))));
  const server = await start(t, { logins });
  const response = await new Promise<{ status?: number; retryAfter?: string; body: string }>((resolve, reject) => {
    const req = request(server.url.replace(/^ws/, 'http'), { headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    req.on('upgrade', () => reject(new Error('upgraded')));
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'], body }));
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(response.status, 503);
  t.match(response.retryAfter, /^\d+$/);
  t.match(JSON.parse(response.body), { error: { code: 'RATE_LIMITED', message: /^handshake: server busy with logins \(1 in progress, 0 waiting/, retryAfterMs: Number } });
  const { ws } = openAccessSocket(server.url, { log, timeoutMs: 2_000 });
  const refused = await new Promise<unknown>((resolve) => ws.on('error', resolve));
  t.match(refused, { code: 'RATE_LIMITED', message: /retry after \d+ s$/, retryAfterMs: Number }, 'the first error a device sees');
  t.equal(logins.refusedBusy, 2);
  release();
  t.equal(await holding, 'done');
  const open = openAccessSocket(server.url, { log, timeoutMs: 2_000 });
  t.teardown(() => open.ws.terminate());
  await new Promise((resolve, reject) => {
    open.ws.once('open', resolve);
    open.ws.on('error', reject);
  });
  t.pass('once the login is through, the handshake is taken');
});

void t.test('a refused handshake that is not a busy Sweep node stands for OFFLINE (A17)', async (t) => {
  t.match(handshakeRefusal(503, '<html>no backend</html>', 'ws://lb/access'), { code: 'OFFLINE', message: 'cannot reach the access server at ws://lb/access (HTTP 503)' });
  t.match(handshakeRefusal(502, '{}', 'ws://lb/access'), { code: 'OFFLINE', message: /HTTP 502/ });
  t.match(handshakeRefusal(503, JSON.stringify({ error: { code: 'RATE_LIMITED', message: 'busy', retryAfterMs: 1200 } }), 'ws://x'), { code: 'RATE_LIMITED', retryAfterMs: 1200 });
});

void t.test('a password login while every slot of the token and proof logins is taken is refused RATE_LIMITED with their wait, before its Argon2 check (A11, issue 16)', async (t) => {
  // One slot, taken; room to wait (a proof would wait its turn): the password login is refused.
  const logins = new LoginGate({ concurrency: 1, queue: 10 });
  const server = await start(t, { logins });
  // The socket opens while the node is idle; then a crowd of cheap logins fills it.
  const ws = new WebSocket(`${server.url}?retryAfter=1`);
  t.teardown(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.on('error', reject);
  });
  let release = (): void => undefined;
  const holding = logins.run('test', () => new Promise<string>((r) => (release = () => r('done'))));
  const keys = fakeEndpointKeys();
  const reply = await new Promise<{ status: string; error?: { code: string; message: string; retryAfterMs?: number } }>((resolve) => {
    ws.on('message', (raw: Buffer) => resolve(JSON.parse(raw.toString()) as never));
    ws.send(JSON.stringify({ kind: 'req', id: 'l1', type: 'login', body: { username: 'alice', password: 'alice-pw', endpointId: 'a1', kind: 'phone', label: '', signingKey: keys.signingKeyRaw, dtlsFingerprint: keys.dtlsFingerprint } }));
  });
  t.match(reply, { status: 'error', error: { code: 'RATE_LIMITED', message: /^server busy with logins \(1 in progress, 0 waiting/, retryAfterMs: Number } }, 'the right password, not checked now');
  t.equal(logins.refuseNow(), undefined, 'a proof would wait its turn');
  release();
  t.equal(await holding, 'done');
  t.equal((await loginOnce(t, server, 'alice', 'alice-pw', 'a1')).status, 'ok', 'once through, the password logs in');
});
