import type { z } from 'zod';
import { SweepError } from './errors.ts';
import { parseWith } from './protocol/validate.ts';
import { fromB64u, toB64u } from './wire/b64.ts';

/**
 * The signed-token format every Sweep signature uses (endpoint certificates A3, sweep grants S4,
 * operator commands): "<base64url(JSON payload)>.<base64url(Ed25519 signature over the first part)>".
 * The format lives here once; the signing itself is the platform's (node:crypto on the device and
 * the server, WebCrypto in the phone page).
 */
export function tokenBody(payload: object): string {
  return toB64u(new TextEncoder().encode(JSON.stringify(payload)));
}

export function joinToken(body: string, signature: Uint8Array): string {
  return `${body}.${toB64u(signature)}`;
}

export interface TokenParts<T> {
  payload: T;
  /** The signed bytes: the first part, as text. */
  body: string;
  signature: Uint8Array<ArrayBuffer>;
}

/** Splits a token and validates its payload, without checking the signature (throws UNAUTHORIZED / INVALID_MESSAGE). */
export function readToken<S extends z.ZodType>(token: string, schema: S, what: string): TokenParts<z.output<S>> {
  const [body, signature, extra] = token.split('.');
  if (!body || !signature || extra !== undefined) throw new SweepError('UNAUTHORIZED', `${what}: not a signed token (payload.signature)`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(fromB64u(body)));
  } catch {
    throw new SweepError('UNAUTHORIZED', `${what}: payload is not base64url JSON`);
  }
  return { payload: parseWith(schema, json, what), body, signature: fromB64u(signature) };
}
