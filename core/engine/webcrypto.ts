import type { z } from 'zod';
import { SweepError } from '../errors.ts';
import { CertificatePayload } from '../protocol/certificate.ts';
import { GrantPayload } from '../protocol/peer.ts';
import { joinToken, readToken, tokenBody } from '../token.ts';
import { fromB64u, randomB64u } from '../wire/b64.ts';
import type { Crypto } from './ports.ts';

/** A WebCrypto Ed25519 private key (a CryptoKey); opaque to the foundation. */
export type SigningCryptoKey = Parameters<typeof crypto.subtle.sign>[1];
/** A WebCrypto Ed25519 public key. */
export type VerifyingCryptoKey = Parameters<typeof crypto.subtle.verify>[1];

/** An Ed25519 public key from its raw base64url form (as certified, A3). */
export function importVerifyingKey(raw: string): Promise<VerifyingCryptoKey> {
  return crypto.subtle.importKey('raw', fromB64u(raw), { name: 'Ed25519' }, false, ['verify']);
}

/** Signs a token (the format of core/token.ts) with WebCrypto. */
export async function signTokenWeb(payload: object, key: SigningCryptoKey): Promise<string> {
  const body = tokenBody(payload);
  const sig = await crypto.subtle.sign({ name: 'Ed25519' }, key, new TextEncoder().encode(body));
  return joinToken(body, new Uint8Array(sig));
}

/** Verifies the signature, then validates the payload (throws SweepError UNAUTHORIZED / INVALID_MESSAGE). */
export async function verifyTokenWeb<S extends z.ZodType>(token: string, key: VerifyingCryptoKey, schema: S, what: string): Promise<z.output<S>> {
  const { payload, body, signature } = readToken(token, schema, what);
  let ok = false;
  try {
    ok = await crypto.subtle.verify({ name: 'Ed25519' }, key, signature, new TextEncoder().encode(body));
  } catch {
    ok = false;
  }
  if (!ok) throw new SweepError('UNAUTHORIZED', `${what}: signature does not verify`);
  return payload;
}

/** P3 with WebCrypto: the access server's signature, then the expiry. */
export async function verifyCertificateWeb(token: string, serverKey: VerifyingCryptoKey, now: number): Promise<CertificatePayload> {
  const cert = await verifyTokenWeb(token, serverKey, CertificatePayload, 'certificate');
  if (cert.expiresAt <= now) throw new SweepError('EXPIRED', `certificate of ${cert.endpointId} expired at ${new Date(cert.expiresAt).toISOString()}`);
  return cert;
}

/**
 * The engine's crypto port over WebCrypto (the phone page; Node has it too, so the engine's tests
 * run on both ports). Verification keys are imported once per holder key.
 */
export function webCrypto(signingKey: SigningCryptoKey): Crypto {
  const keys = new Map<string, Promise<VerifyingCryptoKey>>();
  const verifyKey = (raw: string): Promise<VerifyingCryptoKey> => {
    let key = keys.get(raw);
    if (!key) {
      key = importVerifyingKey(raw);
      keys.set(raw, key);
    }
    return key;
  };
  return {
    signGrant: (payload) => signTokenWeb(payload, signingKey),
    async verifyGrant(token, signingKeyRaw) {
      let key: VerifyingCryptoKey;
      try {
        key = await verifyKey(signingKeyRaw);
      } catch {
        throw new SweepError('UNAUTHORIZED', 'grant: signature does not verify');
      }
      return verifyTokenWeb(token, key, GrantPayload, 'grant');
    },
    randomId: (bytes) => randomB64u(bytes),
  };
}
