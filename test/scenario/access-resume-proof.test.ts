import t, { type Test } from 'tap';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessServer } from '../../server/access-server.ts';
import { hashPassword } from '../../server/passwords.ts';
import { AccessClient } from '../../runtime/access/access-client.ts';
import { WebSocket } from 'ws';
import { askingNonce, NONCE_HEADER, resumeProofMessage } from '../../core/protocol/access.ts';
import { openAccessSocket } from '../../runtime/access/access-socket.ts';
import { loginByProof } from '../../runtime/access/resume-proof-login.ts';
import { CertificatePayload } from '../../core/protocol/certificate.ts';
import { systemClock } from '../../core/clock.ts';
import { peekToken, rawPublicKey, signToken } from '../../platform/token.ts';
import { silentLogger } from '../../platform/log.ts';
import { loadOrCreateServerKey } from '../../server/server-key.ts';
import { issueNonce, NONCE_TTL_MS } from '../../server/resume-proof.ts';
import { tokenBody } from '../../core/token.ts';
import { rawAccess } from '../helpers/access-clients.ts';

const log = silentLogger();

async function server(t: Test): Promise<AccessServer & { dataDir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-proof-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const s = await AccessServer.start({ dataDir: dir, port: 0, log });
  t.teardown(() => s.close());
  await s.store.createAccount('alice', 'Alice', await hashPassword('alice-pw-1'));
  return Object.assign(s, { dataDir: dir });
}

function keys(): { privateKey: KeyObject; signingKeyRaw: string; dtlsFingerprint: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, signingKeyRaw: rawPublicKey(privateKey), dtlsFingerprint: `sha-256 ${Array.from({ length: 32 }, () => 'AB').join(':')}` };
}

function client(t: Test, s: AccessServer, k: ReturnType<typeof keys>, over: { password?: string } = {}): AccessClient {
  const c = new AccessClient({
    url: s.url,
    username: 'alice',
    password: over.password ?? 'alice-pw-1',
    endpointId: 'a1',
    kind: 'phone',
    label: 'Phone',
    signingKeyRaw: k.signingKeyRaw,
    dtlsFingerprint: k.dtlsFingerprint,
    serverPublicKeyRaw: s.publicKeyRaw,
    log,
    backoff: { initialMs: 20, maxMs: 200 },
    signProof: (text) => sign(null, Buffer.from(text), k.privateKey).toString('base64url'),
  });
  t.teardown(() => c.close());
  return c;
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const raw = (t: Test, s: AccessServer) => rawAccess(t, s.url);

/** A logged-in client, a raw socket to the same server and a fresh challenge nonce of it. */
async function challenged(t: Test) {
  const s = await server(t);
  const k = keys();
  const c = client(t, s, k);
  const { certificate } = await c.start();
  const send = await raw(t, s);
  const nonce = String((await send('challenge', {})).data?.nonce);
  return { s, k, c, certificate, send, nonce };
}

void t.test('a reconnect proves the endpoint with its certificate and a signed server nonce: no password check runs (A14)', async (t) => {
  const s = await server(t);
  const k = keys();
  const c = client(t, s, k);
  await c.start();
  t.equal(s.passwordChecks.checked, 1, 'the first login checks the password');
  const ups: boolean[] = [];
  c.onConnectionChange((up) => ups.push(up));
  for (let i = 0; i < 3; i++) {
    s.fence('test: drop every socket');
    await until(`reconnect ${i + 1}`, () => ups.length === 2 * (i + 1) && c.state === 'online');
  }
  t.equal(s.passwordChecks.checked, 1, 'three reconnects, no more Argon2');
  t.ok(s.registry.get('a1'), 'logged in');
});

void t.test('a proof that does not verify is refused UNAUTHORIZED; the endpoint key signing a fresh nonce of this server logs in (A14)', async (t) => {
  const s = await server(t);
  const k = keys();
  const c = client(t, s, k);
  const { certificate } = await c.start();
  const send = await raw(t, s);
  const challenge = await send('challenge', {});
  t.equal(challenge.status, 'ok');
  const nonce = String(challenge.data?.nonce);
  const proofBy = (key: KeyObject, n = nonce): string => sign(null, Buffer.from(resumeProofMessage(n)), key).toString('base64url');
  const refused = { status: 'error', error: { code: 'UNAUTHORIZED', message: /resume proof does not verify/ } };
  t.match(await send('resumeProof', { certificate, nonce, proof: proofBy(keys().privateKey), label: 'x' }), refused, 'signed by another key');
  const foreign = signToken({ v: 1, use: 'resume-proof', n: 'x', exp: Date.now() + 60_000 }, keys().privateKey);
  t.match(await send('resumeProof', { certificate, nonce: foreign, proof: proofBy(k.privateKey, foreign), label: 'x' }), refused, 'a nonce this server did not make');
  const otherDir = mkdtempSync(join(tmpdir(), 'sweep-other-key-'));
  t.teardown(() => rmSync(otherDir, { recursive: true, force: true }));
  const otherServers = issueNonce(await loadOrCreateServerKey(otherDir), Date.now()).nonce;
  t.match(await send('resumeProof', { certificate, nonce: otherServers, proof: proofBy(k.privateKey, otherServers), label: 'x' }), refused, "another server's nonce");
  const serverKey = await loadOrCreateServerKey(s.dataDir);
  const stale = issueNonce(serverKey, Date.now() - NONCE_TTL_MS - 1).nonce;
  t.match(await send('resumeProof', { certificate, nonce: stale, proof: proofBy(k.privateKey, stale), label: 'x' }), refused, 'an expired nonce');
  // Not a nonce's shape: refused as a bad proof, not BUSY "the account store is not reachable".
  const shapeless = `${tokenBody({ hello: 1 })}.AAAA`;
  t.match(await send('resumeProof', { certificate, nonce: shapeless, proof: proofBy(k.privateKey, shapeless), label: 'x' }), refused, 'a token that is no nonce');
  t.match(await send('resumeProof', { certificate: `${certificate}x`, nonce, proof: proofBy(k.privateKey), label: 'x' }), refused, 'a broken certificate');
  const good = await send('resumeProof', { certificate, nonce, proof: proofBy(k.privateKey), label: 'Phone' });
  t.equal(good.status, 'ok', 'the right key signing this server nonce logs in');
  await until('the raw login replaced the client', () => c.state === 'kicked');
});

void t.test('proofs that do not verify are counted and, over the limit, refused RATE_LIMITED; a proof that verifies logs in whatever the count (A14)', async (t) => {
  const { k, certificate, send, nonce } = await challenged(t);
  const proofBy = (key: KeyObject): string => sign(null, Buffer.from(resumeProofMessage(nonce)), key).toString('base64url');
  const forged = { certificate, nonce, proof: proofBy(keys().privateKey), label: 'x' };
  // Five failures per endpoint id a minute (A11's per-username rule, keyed by the endpoint id).
  for (let i = 0; i < 5; i++) t.match(await send('resumeProof', forged), { status: 'error', error: { code: 'UNAUTHORIZED' } }, `forged proof ${i + 1}`);
  t.match(await send('resumeProof', forged), { status: 'error', error: { code: 'RATE_LIMITED', message: /retry after \d+ s/ } }, 'over the limit');
  // A signature by the endpoint's own key cannot be guessed: a lockout others caused does not keep the device out.
  t.equal((await send('resumeProof', { certificate, nonce, proof: proofBy(k.privateKey), label: 'Phone' })).status, 'ok');
});

void t.test('a client whose proof is refused logs in with its password instead (A14)', async (t) => {
  const s = await server(t);
  const k = keys();
  const c = client(t, s, k);
  await c.start();
  const ups: boolean[] = [];
  c.onConnectionChange((up) => ups.push(up));
  s.fence('test');
  await until('reconnected', () => ups.length === 2 && c.state === 'online');
  t.equal(s.passwordChecks.checked, 1, 'the proof was accepted');
  const other = keys();
  const c2 = new AccessClient({ url: s.url, username: 'alice', password: 'alice-pw-1', endpointId: 'a2', kind: 'phone', label: 'P2', signingKeyRaw: other.signingKeyRaw, dtlsFingerprint: other.dtlsFingerprint, serverPublicKeyRaw: s.publicKeyRaw, log, backoff: { initialMs: 20, maxMs: 200 }, signProof: () => sign(null, Buffer.from('wrong'), other.privateKey).toString('base64url') });
  t.teardown(() => c2.close());
  await c2.start();
  const ups2: boolean[] = [];
  c2.onConnectionChange((up) => ups2.push(up));
  s.fence('test');
  await until('c2 reconnected', () => ups2.length === 2 && c2.state === 'online');
  t.equal(s.passwordChecks.checked, 3, 'c2 signed the wrong text: refused, then its password was checked');
});

void t.test('a resume proof sent again is refused REPLAYED: each server nonce is used once (A14)', async (t) => {
  const { s, k, certificate, send, nonce } = await challenged(t);
  const proof = sign(null, Buffer.from(resumeProofMessage(nonce)), k.privateKey).toString('base64url');
  t.equal((await send('resumeProof', { certificate, nonce, proof, label: 'Phone' })).status, 'ok', 'the first use logs in');
  const again = await raw(t, s);
  t.match(await again('resumeProof', { certificate, nonce, proof, label: 'Phone' }), { status: 'error', error: { code: 'REPLAYED', message: /resumeProof\.nonce: already used/ } }, 'the captured proof on another socket');
  t.ok(s.registry.get('a1'), 'the first login stays');
});

void t.test('a handshake that asks for a nonce gets one with the upgrade answer: it logs in by proof without a challenge, once (A14)', async (t) => {
  const s = await server(t);
  const k = keys();
  const { certificate } = await client(t, s, k).start();
  const nonceOf = async (url: string): Promise<string | undefined> => {
    const ws = new WebSocket(url);
    t.teardown(() => ws.terminate());
    const header = await new Promise<string | string[] | undefined>((resolve) => ws.once('upgrade', (res) => resolve(res.headers[NONCE_HEADER])));
    return typeof header === 'string' ? header : undefined;
  };
  t.equal(await nonceOf(s.url), undefined, 'no nonce unasked');

  const socket = openAccessSocket(s.url, { log, timeoutMs: 5_000, askNonce: true });
  t.teardown(() => socket.ws.terminate());
  socket.ws.on('message', (data: Buffer) => socket.channel.receive(data));
  await new Promise((r) => socket.ws.once('open', r));
  const nonce = socket.handshakeNonce;
  t.type(nonce, 'string', 'the upgrade answer carries a nonce');
  const asked: string[] = [];
  const request = socket.channel.request.bind(socket.channel);
  socket.channel.request = ((...args: Parameters<typeof request>) => {
    asked.push(args[0]);
    return request(...args);
  }) as typeof request;
  const payload = peekToken(certificate, CertificatePayload, 'certificate');
  const signProof = (text: string): string => sign(null, Buffer.from(text), k.privateKey).toString('base64url');
  const proved = await loginByProof(socket.channel, { certificate, payload, signingKeyRaw: k.signingKeyRaw, dtlsFingerprint: k.dtlsFingerprint, kind: 'phone', label: 'Phone', clock: systemClock, timeoutMs: 5_000, log, nonce, signProof });
  t.equal(proved?.profile.endpointId, 'a1', 'logged in by proof');
  t.same(asked, ['resumeProof'], 'one request: no challenge round trip');

  const send = await raw(t, s);
  const proof = signProof(resumeProofMessage(String(nonce)));
  t.match(await send('resumeProof', { certificate, nonce, proof, label: 'Phone' }), { status: 'error', error: { code: 'REPLAYED' } }, "the handshake's nonce is used once, as a challenge's");
  const other = await nonceOf(askingNonce(s.url));
  t.not(other, nonce, 'each handshake its own nonce');
});
