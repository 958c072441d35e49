import { createHmac, randomBytes, timingSafeEqual, verify } from 'node:crypto';
import { z } from 'zod';
import { resumeProofMessage, type ChallengeResult, type ResumeProofBody } from '../core/protocol/access.ts';
import { SweepError } from '../core/errors.ts';
import type { Logger } from '../platform/log.ts';
import { verifyCertificate } from '../platform/certificate.ts';
import type { CertificatePayload } from '../core/protocol/certificate.ts';
import { publicKeyFromRaw } from '../platform/token.ts';
import { joinToken, readToken, tokenBody } from '../core/token.ts';
import type { CredentialContext } from './credentials.ts';
import type { ServerKey } from './server-key.ts';

/** How long a nonce may be used: a reconnect asks for it and answers at once. */
export const NONCE_TTL_MS = 60_000;

const NoncePayload = z.strictObject({ v: z.literal(2), use: z.literal('resume-proof'), n: z.string(), exp: z.number().int() });

const BAD_PROOF = 'resume proof does not verify; log in with the password';

/**
 * A14: a nonce with the server's MAC (HMAC-SHA256 under a key every node of a cluster derives
 * from the server key), so any node accepts it; issuing it stores nothing. Not an Ed25519
 * signature: only the server reads it, and signing and checking one cost a restart storm 0.2 ms
 * of the node's loop per login.
 */
export function issueNonce(key: ServerKey, now: number): ChallengeResult {
  const expiresAt = now + NONCE_TTL_MS;
  const body = tokenBody({ v: 2, use: 'resume-proof', n: randomBytes(16).toString('base64url'), exp: expiresAt });
  return { nonce: joinToken(body, macOf(key, body)), expiresAt };
}

function macOf(key: ServerKey, body: string): Buffer {
  return createHmac('sha256', key.macKey).update(body).digest();
}

/** The nonce's payload if this cluster made it and it has not expired; anything else is no nonce. */
function freshNonce(key: ServerKey, nonce: string, now: number): z.output<typeof NoncePayload> | undefined {
  try {
    const { payload, body, signature } = readToken(nonce, NoncePayload, 'nonce');
    const mac = macOf(key, body);
    const ours = signature.length === mac.length && timingSafeEqual(signature, mac);
    return ours && payload.exp > now ? payload : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the proof is the nonce signed by the signing key the certificate names. */
function proofVerifies(body: ResumeProofBody, certificate: CertificatePayload): boolean {
  try {
    return verify(null, Buffer.from(resumeProofMessage(body.nonce)), publicKeyFromRaw(certificate.signingKey), Buffer.from(body.proof, 'base64url'));
  } catch {
    return false;
  }
}

/** A14: what a proof that verifies gives the login: its certificate, and its nonce to record as used (LoginWrites.resumeNonce). */
export interface VerifiedProof {
  certificate: CertificatePayload;
  nonce: { nonce: string; expiresAt: number; now: number };
}

/**
 * A14: checks a resume proof without the store: the certificate is this cluster's and unexpired,
 * the nonce is this cluster's and fresh, and the proof verifies with the signing key the
 * certificate names. Two Ed25519 checks and a MAC, no Argon2. The login then records the nonce
 * in the same round trip as its writes (AccountStore.writeLogin); a nonce used before on any
 * node, or an account gone, is refused there (refuseProof). Refusals are counted per endpoint
 * id and per address like A8's, and RATE_LIMITED over the limits; otherwise UNAUTHORIZED (the
 * client then uses its password), a nonce used before REPLAYED.
 */
export async function verifyResumeProof(ctx: CredentialContext & { key: ServerKey }, address: string, body: ResumeProofBody, log: Logger): Promise<VerifiedProof> {
  const now = ctx.clock.now();
  let certificate: CertificatePayload;
  try {
    certificate = verifyCertificate(body.certificate, ctx.key.publicKey, now);
  } catch {
    log.warn({ address }, 'resume proof refused: certificate');
    throw new SweepError('UNAUTHORIZED', BAD_PROOF);
  }
  const nonce = freshNonce(ctx.key, body.nonce, now);
  // Keyed by its random part, so a token encoded another way is the same nonce.
  if (nonce && proofVerifies(body, certificate)) return { certificate, nonce: { nonce: nonce.n, expiresAt: nonce.exp, now } };
  throw await refuseProof(ctx, certificate, address, log, 'unverified');
}

/**
 * A14: the refusal of a proof that did not verify, whose nonce was used before, or whose
 * account is gone. Only these meet the limits (counted, and refused RATE_LIMITED over them): a
 * signature by the endpoint's key cannot be guessed, and a fleet behind one address must come
 * back all at once however many forged proofs came from there. A proof that verifies costs no
 * limit query.
 */
export async function refuseProof(ctx: CredentialContext, certificate: CertificatePayload, address: string, log: Logger, why: 'unverified' | 'replayed' | 'no account'): Promise<SweepError> {
  const rateKey = `#${certificate.endpointId}`;
  await ctx.limiter.check(rateKey, address);
  await ctx.limiter.recordFailure(rateKey, address);
  const ids = { endpointId: certificate.endpointId, account: certificate.account };
  if (why === 'replayed') {
    log.warn({ ...ids, address }, 'resume proof refused: nonce used before');
    return new SweepError('REPLAYED', 'resumeProof.nonce: already used (a nonce is good for one proof on any node); ask for a new challenge');
  }
  log.warn({ ...ids, why }, 'resume proof refused');
  return new SweepError('UNAUTHORIZED', BAD_PROOF);
}
