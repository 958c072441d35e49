import { randomBytes, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { peekToken, publicKeyFromRaw, signToken, verifyToken } from '../../platform/token.ts';
import { SigningKey } from '../../core/protocol/common.ts';
import { SweepError } from '../../core/errors.ts';

/**
 * Operator-signed commands (Q7-Q9). A signed command is a token
 * `base64url(JSON payload).base64url(Ed25519 signature)` (platform/token.ts) over:
 */
export const SignedCommandPayload = z.strictObject({
  v: z.literal(1),
  /** The operator's public key (raw, base64url); must be one of the device's `operatorKeys`. */
  key: SigningKey,
  /** The device it is for: a command signed for one device is refused by every other (Q8). */
  device: z.string().min(1).max(64),
  command: z.string().min(1).max(32),
  args: z.record(z.string(), z.unknown()).default({}),
  /** Random, at least 16 characters; a nonce seen before is refused REPLAYED (Q9). */
  nonce: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, '16-64 base64url characters'),
  issuedAt: z.number().int().nonnegative(),
  expiresAt: z.number().int().positive(),
});
export type SignedCommandPayload = z.output<typeof SignedCommandPayload>;

/** Shell input, signed by the operator who opened the session (Q12). */
export const SignedShellInput = z.strictObject({
  v: z.literal(1),
  key: SigningKey,
  device: z.string().min(1).max(64),
  session: z.string().min(1).max(64),
  /** Strictly increasing within a session: a repeated or older seq is refused. */
  seq: z.number().int().nonnegative(),
  /** base64 of the bytes typed. */
  data: z.string().max(8192),
});
export type SignedShellInput = z.output<typeof SignedShellInput>;

/** Operator side: signs a command for `device` that expires `ttlMs` from `now`. */
export function signCommand(
  opts: { privateKey: KeyObject; publicKeyRaw: string; device: string; command: string; args?: Record<string, unknown>; now?: number; ttlMs?: number; nonce?: string },
): string {
  const now = opts.now ?? Date.now();
  const payload: SignedCommandPayload = {
    v: 1,
    key: opts.publicKeyRaw,
    device: opts.device,
    command: opts.command,
    args: opts.args ?? {},
    nonce: opts.nonce ?? randomBytes(16).toString('base64url'),
    issuedAt: now,
    expiresAt: now + (opts.ttlMs ?? 60_000),
  };
  return signToken(payload, opts.privateKey);
}

export function signShellInput(opts: { privateKey: KeyObject; publicKeyRaw: string; device: string; session: string; seq: number; data: Buffer }): string {
  const payload: SignedShellInput = { v: 1, key: opts.publicKeyRaw, device: opts.device, session: opts.session, seq: opts.seq, data: opts.data.toString('base64') };
  return signToken(payload, opts.privateKey);
}

/**
 * Device side: checks operator signatures, expiry and nonces. Nonces are remembered until their
 * command expires, at most `maxNonces` at a time (beyond that new commands are refused
 * RATE_LIMITED until some expire), so memory stays bounded.
 */
export class OperatorAuth {
  private readonly keys = new Map<string, KeyObject>();
  private readonly nonces = new Map<string, number>();

  constructor(
    operatorKeys: readonly string[],
    private readonly deviceId: string,
    private readonly maxLifetimeMs: number,
    private readonly maxNonces = 4096,
  ) {
    for (const raw of operatorKeys) this.keys.set(raw, publicKeyFromRaw(raw));
  }

  get hasOperators(): boolean {
    return this.keys.size > 0;
  }

  /** The key object of a configured operator, or UNAUTHORIZED. */
  operatorKey(raw: string): KeyObject {
    const key = this.keys.get(raw);
    if (!key) throw new SweepError('UNAUTHORIZED', `signed: key ${raw.slice(0, 8)}… is not one of this device's operatorKeys`);
    return key;
  }

  /** Q7-Q9: verifies a signed command token; throws UNAUTHORIZED, FORBIDDEN, EXPIRED or REPLAYED. */
  verifyCommand(token: string, now: number): SignedCommandPayload {
    const claimed = peekToken(token, SignedCommandPayload, 'signed');
    const payload = verifyToken(token, this.operatorKey(claimed.key), SignedCommandPayload, 'signed');
    if (payload.device !== this.deviceId) {
      throw new SweepError('FORBIDDEN', `signed.device: "${payload.device}", this device is "${this.deviceId}"`);
    }
    if (payload.expiresAt <= now) throw new SweepError('EXPIRED', `signed.expiresAt: expired ${now - payload.expiresAt} ms ago`);
    if (payload.expiresAt - now > this.maxLifetimeMs) {
      throw new SweepError('EXPIRED', `signed.expiresAt: ${payload.expiresAt - now} ms ahead, at most ${this.maxLifetimeMs} ms allowed`);
    }
    this.prune(now);
    if (this.nonces.has(payload.nonce)) throw new SweepError('REPLAYED', `signed.nonce: ${payload.nonce} was already used`);
    if (this.nonces.size >= this.maxNonces) throw new SweepError('RATE_LIMITED', `too many signed commands in flight (${this.maxNonces}); retry later`);
    this.nonces.set(payload.nonce, payload.expiresAt);
    return payload;
  }

  private prune(now: number): void {
    for (const [nonce, expiresAt] of this.nonces) if (expiresAt <= now) this.nonces.delete(nonce);
  }
}
