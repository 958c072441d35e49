import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCertificate, verifyCertificate } from '../../platform/certificate.ts';
import { loadOrCreateKeys } from '../../runtime/identity/keys.ts';
import { SweepError } from '../../core/errors.ts';

const server = generateKeyPairSync('ed25519');
const NOW = 1_700_000_000_000;

void t.test('loadOrCreateKeys on first boot makes keys that persist, owner-only', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-keys-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = await loadOrCreateKeys(dir, 'handset');
  const b = await loadOrCreateKeys(dir, 'handset');
  t.equal(a.signingKeyRaw, b.signingKeyRaw);
  t.equal(a.dtlsFingerprint, b.dtlsFingerprint);
  t.match(a.dtlsFingerprint, /^sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  t.equal((await stat(a.dtlsKeyFile)).mode & 0o777, 0o600);
  t.equal((await stat(join(dir, 'signing-key.pem'))).mode & 0o777, 0o600);
});

void t.test('verifyCertificate with a tampered, foreign or expired certificate refuses it (P3)', async (t) => {
  const payload = {
    v: 1 as const, account: 'alice', endpointId: 'handset', kind: 'deskphone' as const, label: 'Desk',
    signingKey: 'A'.repeat(43), dtlsFingerprint: 'sha-256 ' + Array(32).fill('0F').join(':'), issuedAt: NOW, expiresAt: NOW + 1000,
  };
  const token = issueCertificate(payload, server.privateKey);
  t.same(verifyCertificate(token, server.publicKey, NOW), payload);
  const [, sig] = token.split('.');
  const tampered = `${Buffer.from(JSON.stringify({ ...payload, account: 'mallory' })).toString('base64url')}.${sig}`;
  const code = (fn: () => unknown) => {
    try {
      fn();
      return 'accepted';
    } catch (e) {
      return (e as SweepError).code;
    }
  };
  t.equal(code(() => verifyCertificate(tampered, server.publicKey, NOW)), 'UNAUTHORIZED');
  t.equal(code(() => verifyCertificate(issueCertificate(payload, generateKeyPairSync('ed25519').privateKey), server.publicKey, NOW)), 'UNAUTHORIZED');
  t.equal(code(() => verifyCertificate(token, server.publicKey, NOW + 1000)), 'EXPIRED');
  t.equal(code(() => verifyCertificate('nonsense', server.publicKey, NOW)), 'UNAUTHORIZED');
});
