import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import type { z } from 'zod';
import { SweepError } from '../core/errors.ts';
import { joinToken, readToken, tokenBody } from '../core/token.ts';

/** Signs a token (format: core/token.ts) with node:crypto: certificates on the server, grants on the device. */
export function signToken(payload: object, privateKey: KeyObject): string {
  const body = tokenBody(payload);
  return joinToken(body, sign(null, Buffer.from(body), privateKey));
}

/** Reads a token's payload without checking the signature (to learn who claims to have signed it). */
export function peekToken<S extends z.ZodType>(token: string, schema: S, what: string): z.output<S> {
  return readToken(token, schema, what).payload;
}

/** Verifies the signature, then validates the payload against `schema`. */
export function verifyToken<S extends z.ZodType>(token: string, publicKey: KeyObject, schema: S, what: string): z.output<S> {
  const { payload, body, signature } = readToken(token, schema, what);
  let ok = false;
  try {
    ok = verify(null, Buffer.from(body), publicKey, signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new SweepError('UNAUTHORIZED', `${what}: signature does not verify`);
  return payload;
}

/** Ed25519 raw public key (32 bytes, base64url) ↔ KeyObject. */
export function publicKeyFromRaw(raw: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw }, format: 'jwk' });
}

export function rawPublicKey(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new SweepError('INTERNAL', 'not an Ed25519 key');
  return jwk.x;
}

export function privateKeyFromPem(pem: string): KeyObject {
  return createPrivateKey(pem);
}
