import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { checkUpdate, issueGrant, NonceSet, type UpdateCheck } from '../../core/engine/sweep-rules.ts';
import { rawPublicKey, signToken } from '../../platform/token.ts';
import type { CertificatePayload } from '../../platform/certificate.ts';
import { SweepError } from '../../core/errors.ts';
import { nodeCrypto } from '../../platform/grant-crypto.ts';

const NOW = 1_700_000_000_000;
const holderKeys = generateKeyPairSync('ed25519');
const otherKeys = generateKeyPairSync('ed25519');
const FP = 'sha-256 ' + Array.from({ length: 32 }, () => 'AB').join(':');

function cert(account: string, endpointId: string, key = holderKeys.publicKey): CertificatePayload {
  return { v: 1, account, endpointId, kind: 'deskphone', label: endpointId, signingKey: rawPublicKey(key), dtlsFingerprint: FP, issuedAt: NOW, expiresAt: NOW + 1e6 };
}

async function base(overrides: Partial<UpdateCheck> = {}): Promise<UpdateCheck> {
  const { token } = await issueGrant({ sessionId: 's1', from: 'handset', to: 'phone', epoch: 1, now: NOW, ttlMs: 3000 }, nodeCrypto(holderKeys.privateKey));
  return {
    sessionId: 's1',
    currentEpoch: 0,
    holder: cert('alice', 'handset'),
    holderReachable: true,
    sender: cert('alice', 'phone', otherKeys.publicKey),
    update: { sessionId: 's1', epoch: 1, grant: token },
    now: NOW + 10,
    nonceSeen: () => false,
    crypto: nodeCrypto(otherKeys.privateKey),
    ...overrides,
  };
}

async function code(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
    return 'accepted';
  } catch (err) {
    return (err as SweepError).code;
  }
}

void t.test('checkUpdate with a valid grant accepts and returns its nonce (S6)', async (t) => {
  const nonce = await checkUpdate(await base());
  t.type(nonce, 'string');
});

void t.test('checkUpdate from another account is FORBIDDEN (S6)', async (t) => {
  t.equal(await code(async () => checkUpdate(await base({ sender: cert('mallory', 'phone', otherKeys.publicKey) }))), 'FORBIDDEN');
});

void t.test('checkUpdate with a grant signed by someone else is UNAUTHORIZED (S6 forged)', async (t) => {
  const forged = (await issueGrant({ sessionId: 's1', from: 'handset', to: 'phone', epoch: 1, now: NOW, ttlMs: 3000 }, nodeCrypto(otherKeys.privateKey))).token;
  t.equal(await code(async () => checkUpdate(await base({ update: { sessionId: 's1', epoch: 1, grant: forged } }))), 'UNAUTHORIZED');
});

void t.test('checkUpdate with a tampered grant payload is UNAUTHORIZED', async (t) => {
  const good = (await base()).update.grant!;
  const [, sig] = good.split('.');
  const payload = Buffer.from(JSON.stringify({ sessionId: 's1', from: 'handset', to: 'phone', epoch: 1, nonce: 'n', expiresAt: NOW + 1e9 })).toString('base64url');
  t.equal(await code(async () => checkUpdate(await base({ update: { sessionId: 's1', epoch: 1, grant: `${payload}.${sig}` } }))), 'UNAUTHORIZED');
  t.equal(await code(async () => checkUpdate(await base({ update: { sessionId: 's1', epoch: 1, grant: 'garbage' } }))), 'UNAUTHORIZED');
});

void t.test('checkUpdate with a grant for another endpoint is UNAUTHORIZED', async (t) => {
  const token = signToken({ sessionId: 's1', from: 'handset', to: 'tablet', epoch: 1, nonce: 'n1', expiresAt: NOW + 3000 }, holderKeys.privateKey);
  t.equal(await code(async () => checkUpdate(await base({ update: { sessionId: 's1', epoch: 1, grant: token } }))), 'UNAUTHORIZED');
});

void t.test('checkUpdate with the wrong epoch is STALE_EPOCH (S12)', async (t) => {
  t.equal(await code(async () => checkUpdate(await base({ currentEpoch: 1 }))), 'STALE_EPOCH');
});

void t.test('checkUpdate after the grant expired is EXPIRED', async (t) => {
  t.equal(await code(async () => checkUpdate(await base({ now: NOW + 3000 }))), 'EXPIRED');
});

void t.test('checkUpdate with a nonce already used is REPLAYED', async (t) => {
  t.equal(await code(async () => checkUpdate(await base({ nonceSeen: () => true }))), 'REPLAYED');
});

void t.test('checkUpdate without grant is refused while the holder is reachable, accepted when not (S9)', async (t) => {
  t.equal(await code(async () => checkUpdate(await base({ update: { sessionId: 's1', epoch: 1, grant: null } }))), 'UNAUTHORIZED');
  t.equal(await checkUpdate(await base({ holderReachable: false, update: { sessionId: 's1', epoch: 1, grant: null } })), null);
  t.equal(
    await code(async () => checkUpdate(await base({ holderReachable: false, sender: cert('mallory', 'x', otherKeys.publicKey), update: { sessionId: 's1', epoch: 1, grant: null } }))),
    'FORBIDDEN',
  );
});

void t.test('NonceSet beyond its capacity forgets the oldest', async (t) => {
  const s = new NonceSet(2);
  s.add('a');
  s.add('b');
  s.add('c');
  t.notOk(s.has('a'));
  t.ok(s.has('b') && s.has('c'));
});
