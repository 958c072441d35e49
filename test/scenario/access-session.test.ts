import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { AccessServer } from '../../server/access-server.ts';
import { hashPassword } from '../../server/passwords.ts';
import { LoginResult, SessionToken } from '../../core/protocol/access.ts';
import { silentLogger } from '../../platform/log.ts';
import { fakeEndpointKeys } from '../helpers/endpoint-keys.ts';

const log = silentLogger();

/** A raw access socket, as the browser client speaks it: one request at a time, answers by id. */
async function socket(t: Test, server: AccessServer) {
  const ws = new WebSocket(server.url);
  t.teardown(() => ws.close());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let n = 0;
  return {
    request(type: string, body: unknown): Promise<{ status: string; data?: unknown; error?: { code: string; message: string } }> {
      const id = `r${++n}`;
      return new Promise((resolve) => {
        const onMessage = (raw: Buffer): void => {
          const msg = JSON.parse(raw.toString()) as { kind: string; id?: string; status: string; data?: unknown; error?: { code: string; message: string } };
          if (msg.kind === 'res' && msg.id === id) {
            ws.off('message', onMessage);
            resolve(msg);
          }
        };
        ws.on('message', onMessage);
        ws.send(JSON.stringify({ kind: 'req', id, type, body }));
      });
    },
  };
}

async function start(t: Test, over: { sessionTtlMs?: number } = {}): Promise<AccessServer> {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-session-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const server = await AccessServer.start({ dataDir: dir, port: 0, log, webRoot: dir, ...over });
  t.teardown(() => server.close());
  await server.store.createAccount('alice', 'Alice', await hashPassword('alice-pw'));
  return server;
}

const keys = fakeEndpointKeys();
const who = { endpointId: 'web-1', kind: 'browser', label: 'phone', signingKey: keys.signingKeyRaw, dtlsFingerprint: keys.dtlsFingerprint };

void t.test('login returns a session token and resume logs in with it instead of the password (A7, A8)', async (t) => {
  const server = await start(t);
  const a = await socket(t, server);
  const login = await a.request('login', { username: 'alice', password: 'alice-pw', ...who });
  t.equal(login.status, 'ok');
  const first = LoginResult.parse(login.data).session!;
  t.ok(SessionToken.safeParse(first).success, 'a session token');
  t.ok(first.expiresAt > Date.now() + 3000_000, 'valid for about an hour by default');

  const b = await socket(t, server);
  const resumed = await b.request('resume', { token: first.token, ...who });
  t.equal(resumed.status, 'ok', JSON.stringify(resumed.error));
  const r = LoginResult.parse(resumed.data);
  t.equal(r.profile.account, 'alice');
  t.ok(r.certificate.includes('.'), 'a certificate, as at login (A3)');
  t.not(r.session!.token, first.token, 'a new token: the old one was single use');

  const c = await socket(t, server);
  const replay = await c.request('resume', { token: first.token, ...who });
  t.match(replay, { status: 'error', error: { code: 'UNAUTHORIZED' } }, 'a used token is refused (A8)');
  t.notMatch(JSON.stringify(replay), first.token, 'the refusal does not echo the token');
});

void t.test('resume with a token of another endpoint id, an unknown or an expired token is refused UNAUTHORIZED (A8)', async (t) => {
  const server = await start(t, { sessionTtlMs: 200 });
  const a = await socket(t, server);
  const login = await a.request('login', { username: 'alice', password: 'alice-pw', ...who });
  const token = LoginResult.parse(login.data).session!.token;
  const b = await socket(t, server);
  t.match(await b.request('resume', { token, ...who, endpointId: 'web-2' }), { status: 'error', error: { code: 'UNAUTHORIZED' } }, 'bound to its endpoint id');
  t.match(await b.request('resume', { token, ...who }), { status: 'error', error: { code: 'UNAUTHORIZED' } }, 'consumed by the failed attempt');
  t.match(await b.request('resume', { token: 'A'.repeat(43), ...who }), { status: 'error', error: { code: 'UNAUTHORIZED' } }, 'unknown');
  t.match(await b.request('resume', { token: 'short', ...who }), { status: 'error', error: { code: 'INVALID_MESSAGE', message: /token/ } }, 'malformed names the field');

  const c = await socket(t, server);
  const again = await c.request('login', { username: 'alice', password: 'alice-pw', ...who, endpointId: 'web-3' });
  const expiring = LoginResult.parse(again.data).session!.token;
  await new Promise((r) => setTimeout(r, 300));
  const d = await socket(t, server);
  t.match(await d.request('resume', { token: expiring, ...who, endpointId: 'web-3' }), { status: 'error', error: { code: 'UNAUTHORIZED' } }, 'expired');
});

void t.test('refresh replaces the token and logout revokes it (A9)', async (t) => {
  const server = await start(t);
  const a = await socket(t, server);
  t.match(await a.request('refresh', {}), { status: 'error', error: { code: 'UNAUTHORIZED' } }, 'refresh needs a login');
  const login = await a.request('login', { username: 'alice', password: 'alice-pw', ...who });
  const first = LoginResult.parse(login.data).session!.token;
  const refreshed = await a.request('refresh', {});
  const second = SessionToken.parse(refreshed.data).token;
  t.not(second, first);
  const b = await socket(t, server);
  t.match(await b.request('resume', { token: first, ...who }), { status: 'error', error: { code: 'UNAUTHORIZED' } }, 'the old token stopped working');

  const c = await socket(t, server);
  await c.request('login', { username: 'alice', password: 'alice-pw', ...who });
  const third = await c.request('refresh', {});
  const token = SessionToken.parse(third.data).token;
  t.match(await c.request('logout', {}), { status: 'ok' });
  const d = await socket(t, server);
  t.match(await d.request('resume', { token, ...who }), { status: 'error', error: { code: 'UNAUTHORIZED' } }, 'logged out: revoked');
});

void t.test('server.json serves the server public key for the web client (P3 trust anchor)', async (t) => {
  const server = await start(t);
  const res = await fetch(`${server.httpUrl}/server.json`);
  t.same(await res.json(), { publicKey: server.publicKeyRaw, accessPath: '/access' });
});
