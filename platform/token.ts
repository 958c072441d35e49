import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import type { z } from 'zod';
import { SweepError } from '../core/errors.ts';
import { parseWith } from '../core/protocol/validate.ts';

/**
 * A signed token: "<base64url(JSON payload)>.<base64url(Ed25519 signature over the first part)>".
 * Used for endpoint certificates (signed by the access server) and sweep grants (signed by the holder).
 */
export function signToken(payload: object, privateKey: KeyObject): string {
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
  const signature = sign(null, Buffer.from(body), privateKey).toString('base64url');
  return `${body}.${signature}`;
}

/** Reads a token's payload without checking the signature (to learn who claims to have signed it). */
export function peekToken<S extends z.ZodType>(token: string, schema: S, what: string): z.output<S> {
  const [body, signature, extra] = token.split('.');
  if (!body || !signature || extra !== undefined) {
    throw new SweepError('UNAUTHORIZED', `${what}: not a signed token (payload.signature)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    throw new SweepError('UNAUTHORIZED', `${what}: payload is not base64url JSON`);
  }
  return parseWith(schema, json, what);
}

/** Verifies the signature, then validates the payload against `schema`. */
export function verifyToken<S extends z.ZodType>(token: string, publicKey: KeyObject, schema: S, what: string): z.output<S> {
  const payload = peekToken(token, schema, what);
  const [body, signature] = token.split('.') as [string, string];
  let ok = false;
  try {
    ok = verify(null, Buffer.from(body), publicKey, Buffer.from(signature, 'base64url'));
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
