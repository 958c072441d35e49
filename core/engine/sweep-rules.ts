import type { GrantPayload } from '../protocol/peer.ts';
import type { CertificatePayload } from '../protocol/certificate.ts';
import { SweepError } from '../errors.ts';
import type { Crypto } from './ports.ts';

/** S4: the holder's grant handing `sessionId` at `epoch` to `to`, valid for `ttlMs`, signed through the crypto port. */
export async function issueGrant(
  args: { sessionId: string; from: string; to: string; epoch: number; now: number; ttlMs: number },
  crypto: Crypto,
): Promise<{ token: string; payload: GrantPayload }> {
  const payload: GrantPayload = {
    sessionId: args.sessionId,
    from: args.from,
    to: args.to,
    epoch: args.epoch,
    nonce: crypto.randomId(12),
    expiresAt: args.now + args.ttlMs,
  };
  return { token: await crypto.signGrant(payload), payload };
}

export interface UpdateCheck {
  sessionId: string;
  /** The far end's current epoch of the session. */
  currentEpoch: number;
  /** The current holder's verified certificate. */
  holder: CertificatePayload;
  /** Whether the far end's link to the holder is still alive (S9). */
  holderReachable: boolean;
  /** The sender's verified certificate (P4). */
  sender: CertificatePayload;
  update: { sessionId: string; epoch: number; grant: string | null };
  now: number;
  nonceSeen: (nonce: string) => boolean;
  crypto: Crypto;
}

/**
 * S6 and S9: whether the far end may move the call to the sender. Resolves with the grant's nonce
 * (null for a grantless takeover) or rejects with the SweepError the sender is told. The signature
 * check is asynchronous: the caller re-checks its state once this settles (S12).
 */
export async function checkUpdate(c: UpdateCheck): Promise<string | null> {
  if (c.update.sessionId !== c.sessionId) throw new SweepError('NOT_FOUND', `no session ${c.update.sessionId} here`);
  if (c.sender.endpointId === c.holder.endpointId) throw new SweepError('BAD_STATE', 'sender already holds the call');
  if (c.sender.account !== c.holder.account) {
    throw new SweepError('FORBIDDEN', `account ${c.sender.account} may not take a call held by account ${c.holder.account}`);
  }
  if (c.update.epoch !== c.currentEpoch + 1) {
    throw new SweepError('STALE_EPOCH', `epoch ${c.update.epoch} refused: the session is at epoch ${c.currentEpoch}, expected ${c.currentEpoch + 1}`);
  }
  if (c.update.grant === null) {
    if (c.holderReachable) throw new SweepError('UNAUTHORIZED', 'a grant from the holder is required while the holder is reachable');
    return null; // S9
  }
  const grant = await c.crypto.verifyGrant(c.update.grant, c.holder.signingKey);
  if (grant.from !== c.holder.endpointId) throw new SweepError('UNAUTHORIZED', `grant is from ${grant.from}, the holder is ${c.holder.endpointId}`);
  if (grant.to !== c.sender.endpointId) throw new SweepError('UNAUTHORIZED', `grant is for ${grant.to}, not for ${c.sender.endpointId}`);
  if (grant.sessionId !== c.sessionId) throw new SweepError('UNAUTHORIZED', `grant is for session ${grant.sessionId}`);
  if (grant.epoch !== c.update.epoch) throw new SweepError('UNAUTHORIZED', `grant is for epoch ${grant.epoch}, update says ${c.update.epoch}`);
  if (grant.expiresAt <= c.now) throw new SweepError('EXPIRED', `grant expired ${c.now - grant.expiresAt} ms ago`);
  if (c.nonceSeen(grant.nonce)) throw new SweepError('REPLAYED', 'grant was already used');
  return grant.nonce;
}

/** A bounded set of seen nonces: old entries fall out once it is full (grants expire long before). */
export class NonceSet {
  private readonly seen = new Set<string>();
  constructor(private readonly capacity = 4096) {}
  has(nonce: string): boolean {
    return this.seen.has(nonce);
  }
  add(nonce: string): void {
    this.seen.add(nonce);
    if (this.seen.size > this.capacity) {
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
  }
}
