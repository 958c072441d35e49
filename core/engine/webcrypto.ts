import { SweepError } from '../errors.ts';
import { GrantPayload } from '../protocol/peer.ts';
import { joinToken, readToken, tokenBody } from '../token.ts';
import { fromB64u, randomB64u } from '../wire/b64.ts';
import type { Crypto } from './ports.ts';

/** A WebCrypto Ed25519 private key (a CryptoKey); opaque to the foundation. */
export type SigningCryptoKey = Parameters<typeof crypto.subtle.sign>[1];
type VerifyingCryptoKey = Parameters<typeof crypto.subtle.verify>[1];

/**
 * The engine's crypto port over WebCrypto (the phone page; Node has it too, so the engine's tests
 * run on both ports). Verification keys are imported once per holder key.
 */
export function webCrypto(signingKey: SigningCryptoKey): Crypto {
  const keys = new Map<string, Promise<VerifyingCryptoKey>>();
  const verifyKey = (raw: string): Promise<VerifyingCryptoKey> => {
    let key = keys.get(raw);
    if (!key) {
      key = crypto.subtle.importKey('raw', fromB64u(raw), { name: 'Ed25519' }, false, ['verify']);
      keys.set(raw, key);
    }
    return key;
  };
  return {
    async signGrant(payload) {
      const body = tokenBody(payload);
      const sig = await crypto.subtle.sign({ name: 'Ed25519' }, signingKey, new TextEncoder().encode(body));
      return joinToken(body, new Uint8Array(sig));
    },
    async verifyGrant(token, signingKeyRaw) {
      const { payload, body, signature } = readToken(token, GrantPayload, 'grant');
      let ok = false;
      try {
        ok = await crypto.subtle.verify({ name: 'Ed25519' }, await verifyKey(signingKeyRaw), signature, new TextEncoder().encode(body));
      } catch {
        ok = false;
      }
      if (!ok) throw new SweepError('UNAUTHORIZED', 'grant: signature does not verify');
      return payload;
    },
    randomId: (bytes) => randomB64u(bytes),
  };
}
