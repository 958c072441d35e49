import t, { type Test } from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { AccessClient } from '../../runtime/access/access-client.ts';
import { issueCertificate, type CertificatePayload } from '../../runtime/identity/certificate.ts';
import { rawPublicKey } from '../../runtime/identity/token.ts';
import { silentLogger } from '../../runtime/util/log.ts';
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
