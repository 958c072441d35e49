import { randomBytes, type KeyObject } from 'node:crypto';
import { GrantPayload } from '../core/protocol/peer.ts';
import type { Crypto } from '../core/engine/ports.ts';
import { publicKeyFromRaw, signToken, verifyToken } from './token.ts';

/** The engine's crypto port (core/engine/ports.ts) over node:crypto, for the device and the lab. */
export function nodeCrypto(signingKey: KeyObject): Crypto {
  return {
    signGrant: async (payload) => signToken(payload, signingKey),
    verifyGrant: async (token, signingKeyRaw) => verifyToken(token, publicKeyFromRaw(signingKeyRaw), GrantPayload, 'grant'),
    randomId: (bytes) => randomBytes(bytes).toString('base64url'),
  };
}
