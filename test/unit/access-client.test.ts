import t, { type Test } from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { AccessClient } from '../../runtime/access/access-client.ts';
import { FINAL_LOGIN_REFUSALS, isFinalLoginRefusal, RECONNECT_BACKOFF } from '../../core/protocol/access.ts';
import { Backoff } from '../../core/backoff.ts';
import { issueCertificate, type CertificatePayload } from '../../platform/certificate.ts';
import { rawPublicKey } from '../../platform/token.ts';
import { silentLogger } from '../../platform/log.ts';
import { fakeEndpointKeys } from '../helpers/endpoint-keys.ts';

/** A stand-in server that answers every login with a certificate built by `certify`. */
async function fakeServer(t: Test, certify: (login: Record<string, string>) => Partial<CertificatePayload>): Promise<{ url: string; keyRaw: string }> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  t.teardown(() => new Promise<void>((r) => {
    for (const c of wss.clients) c.terminate();
    wss.close(() => r());
  }));
  wss.on('connection', (ws) => {
    ws.on('message', (data: Buffer) => {
      const req = JSON.parse(data.toString()) as { id: string; type: string; body: Record<string, string> };
      if (req.type !== 'login') return ws.send(JSON.stringify({ kind: 'res', id: req.id, status: 'ok', data: {} }));
      const b = req.body;
      const now = Date.now();
      const payload = {
        v: 1 as const, account: b.username!, endpointId: b.endpointId!, kind: 'deskphone' as const, label: '',
        signingKey: b.signingKey!, dtlsFingerprint: b.dtlsFingerprint!, issuedAt: now, expiresAt: now + 60_000, ...certify(b),
      };
      const profile = { account: b.username, displayName: '', endpointId: b.endpointId, siblings: [], buddies: [] };
      ws.send(JSON.stringify({ kind: 'res', id: req.id, status: 'ok', data: { profile, certificate: issueCertificate(payload, privateKey), serverTime: now } }));
    });
  });
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, keyRaw: rawPublicKey(privateKey) };
}

function client(t: Test, url: string, keyRaw: string): AccessClient {
  const c = new AccessClient({
    url, username: 'alice', password: 'pw', endpointId: 'a1', kind: 'deskphone', label: '',
    ...fakeEndpointKeys(), serverPublicKeyRaw: keyRaw, log: silentLogger(),
  });
  t.teardown(() => c.close());
  return c;
}

void t.test('start with a certificate for this endpoint resolves and keeps the payload', async (t) => {
  const s = await fakeServer(t, () => ({}));
  const c = client(t, s.url, s.keyRaw);
  await c.start();
  t.equal(c.certificatePayload?.endpointId, 'a1');
});

const forged: Array<[string, (b: Record<string, string>) => Partial<CertificatePayload>, RegExp]> = [
  ['another endpoint id', () => ({ endpointId: 'a2' }), /endpointId is "a2"/],
  ['another signing key', () => ({ signingKey: fakeEndpointKeys().signingKeyRaw }), /signingKey is/],
  ['another DTLS fingerprint', () => ({ dtlsFingerprint: fakeEndpointKeys().dtlsFingerprint }), /dtlsFingerprint is/],
  ['another account', () => ({ account: 'mallory' }), /account is "mallory"/],
];
for (const [what, certify, message] of forged) {
  void t.test(`start with a certificate naming ${what} rejects UNAUTHORIZED`, async (t) => {
    const s = await fakeServer(t, certify);
    const c = client(t, s.url, s.keyRaw);
    await t.rejects(c.start(), { code: 'UNAUTHORIZED', message });
    t.equal(c.state, 'idle');
  });
}

void t.test('start with an expired certificate rejects EXPIRED', async (t) => {
  const s = await fakeServer(t, () => ({ expiresAt: Date.now() - 1 }));
  await t.rejects(client(t, s.url, s.keyRaw).start(), { code: 'EXPIRED' });
});

void t.test('AccessClient with a malformed server key throws INVALID_CONFIG naming the option', async (t) => {
  t.throws(() => client(t, 'ws://127.0.0.1:1', 'short'), { code: 'INVALID_CONFIG', message: /serverPublicKeyRaw/ });
});

/** A stand-in server whose n-th login is answered as `script[n]` says: 'ok', 'silent' (no answer) or an error code. */
async function scriptedServer(t: Test, script: string[]): Promise<{ url: string; keyRaw: string; logins: () => number; loginTimes: number[]; drop: () => void }> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  t.teardown(() => new Promise<void>((r) => {
    for (const c of wss.clients) c.terminate();
    wss.close(() => r());
  }));
  let n = 0;
  const at: number[] = [];
  wss.on('connection', (ws, req) => {
    const asked = (req.url ?? '').includes('retryAfter=1');
    ws.on('message', (data: Buffer) => {
      const req = JSON.parse(data.toString()) as { id: string; type: string; body: Record<string, string> };
      if (req.type !== 'login') return ws.send(JSON.stringify({ kind: 'res', id: req.id, status: 'ok', data: {} }));
      at.push(Date.now());
      const step = script[n++] ?? 'ok';
      if (step === 'silent') return;
      // "CODE@ms": the refusal asks for that wait (A17), to a client that asked for it.
      const [code, wait] = step.split('@');
      const retry = wait !== undefined && asked ? { retryAfterMs: Number(wait) } : {};
      if (step !== 'ok') return ws.send(JSON.stringify({ kind: 'res', id: req.id, status: 'error', error: { code, message: `scripted ${code}`, ...retry } }));
      const b = req.body;
      const now = Date.now();
      const payload = { v: 1 as const, account: b.username!, endpointId: b.endpointId!, kind: 'deskphone' as const, label: '', signingKey: b.signingKey!, dtlsFingerprint: b.dtlsFingerprint!, issuedAt: now, expiresAt: now + 60_000 };
      const profile = { account: b.username, displayName: '', endpointId: b.endpointId, siblings: [], buddies: [] };
      ws.send(JSON.stringify({ kind: 'res', id: req.id, status: 'ok', data: { profile, certificate: issueCertificate(payload, privateKey), serverTime: now } }));
    });
  });
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    keyRaw: rawPublicKey(privateKey),
    logins: () => n,
    loginTimes: at,
    drop: () => {
      for (const c of wss.clients) c.terminate();
    },
  };
}

function fastClient(t: Test, url: string, keyRaw: string, backoff = { initialMs: 5, maxMs: 20 }): AccessClient {
  const c = new AccessClient({
    url, username: 'alice', password: 'pw', endpointId: 'a1', kind: 'deskphone', label: '',
    ...fakeEndpointKeys(), serverPublicKeyRaw: keyRaw, log: silentLogger(), backoff, requestTimeoutMs: 150,
  });
  t.teardown(() => c.close());
  return c;
}

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

void t.test('reconnect refused for a transient reason is retried with back-off until it logs in (issue 12, A10)', async (t) => {
  const transient = ['RATE_LIMITED', 'BUSY', 'silent', 'FORBIDDEN', 'INTERNAL', 'CLOSED'];
  const s = await scriptedServer(t, ['ok', ...transient, 'ok']);
  const c = fastClient(t, s.url, s.keyRaw);
  const changes: boolean[] = [];
  c.onConnectionChange((v) => changes.push(v));
  await c.start();
  s.drop();
  await until('back online', () => changes.length === 3, 5000);
  t.same(changes, [true, false, true]);
  t.equal(c.state, 'online');
  t.equal(s.logins(), 2 + transient.length, 'every refusal was followed by another attempt');
});

void t.test('reconnect refused busy with a retryAfterMs waits that long, not its own back-off (A17, issue 16)', async (t) => {
  const s = await scriptedServer(t, ['ok', 'RATE_LIMITED@400', 'RATE_LIMITED@300', 'ok']);
  const c = fastClient(t, s.url, s.keyRaw, { initialMs: 5, maxMs: 2000 });
  const changes: boolean[] = [];
  c.onConnectionChange((v) => changes.push(v));
  await c.start();
  s.drop();
  await until('back online', () => changes.length === 3, 5000);
  const [, first, second, third] = s.loginTimes;
  t.ok(second! - first! >= 400 && second! - first! < 400 + 5 + 200, `asked 400 ms, waited ${second! - first!} ms`);
  t.ok(third! - second! >= 300 && third! - second! < 300 + 5 + 200, `asked 300 ms, waited ${third! - second!} ms`);
});

void t.test('reconnect refused for wrong credentials is final: state refused, no more attempts (issue 12, A10)', async (t) => {
  const s = await scriptedServer(t, ['ok', 'RATE_LIMITED', 'UNAUTHORIZED', 'ok']);
  const c = fastClient(t, s.url, s.keyRaw);
  const refused: string[] = [];
  c.onRefused((e) => refused.push(`${e.code}: ${e.message}`));
  await c.start();
  s.drop();
  await until('refused', () => refused.length === 1);
  t.match(refused[0], /^UNAUTHORIZED: login: scripted UNAUTHORIZED/);
  t.equal(c.state, 'refused');
  await new Promise((r) => setTimeout(r, 100));
  t.equal(s.logins(), 3, 'no attempt after the final refusal');
});

void t.test('isFinalLoginRefusal is true only for wrong credentials (issue 12, A10)', async (t) => {
  t.same([...FINAL_LOGIN_REFUSALS], ['UNAUTHORIZED']);
  for (const code of ['RATE_LIMITED', 'BUSY', 'OFFLINE', 'TIMEOUT', 'CLOSED', 'FORBIDDEN', 'INTERNAL', 'TOO_LARGE', 'EXPIRED']) t.notOk(isFinalLoginRefusal(code), `${code} is retried`);
  t.ok(isFinalLoginRefusal('UNAUTHORIZED'));
});

void t.test('with the default back-off, 10,000 devices whose server restarted in 6 s all try again within 18 s (A10, issue 16)', async (t) => {
  let seed = 7;
  // A fixed LCG, so the test is repeatable.
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const downMs = 6_000;
  let latest = 0;
  for (let device = 0; device < 10_000; device += 1) {
    const backoff = new Backoff({ ...RECONNECT_BACKOFF, random });
    let at = 0;
    while (at < downMs) at += backoff.next();
    latest = Math.max(latest, at);
  }
  // With a 30 s ceiling the last came back after 34 s, whatever the server did (A17 paces only those it answers).
  t.ok(latest <= 18_000, `the last device's first try after the restart came ${latest} ms after the loss`);
});
