import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { rawPublicKey } from '../../platform/token.ts';

/** A fresh Ed25519 public key and a syntactically valid DTLS fingerprint, without openssl. */
export function fakeEndpointKeys(): { signingKeyRaw: string; dtlsFingerprint: string } {
  const { publicKey } = generateKeyPairSync('ed25519');
  const hex = randomBytes(32).toString('hex').toUpperCase();
  return { signingKeyRaw: rawPublicKey(publicKey), dtlsFingerprint: `sha-256 ${hex.match(/../g)!.join(':')}` };
}
