import { createHmac } from 'node:crypto';
import { parseIceUrl, type IceConfig, type IcePolicy } from '../core/protocol/ice.ts';
import { SweepError } from '../core/errors.ts';

/** A13: what a deployment configures; the secret is coturn's `static-auth-secret`. */
export interface IceOptions {
  /** stun:HOST[:PORT] URLs (no credentials). */
  stun: readonly string[];
  /** turn: and turns: URLs of TURN servers sharing `secret`. */
  turn: readonly string[];
  /** The TURN REST shared secret; required with `turn`. Never logged, never sent. */
  secret?: string;
  /** How long handed-out TURN credentials work, seconds (default 3600). */
  ttlSeconds?: number;
  /** `relay`: every link goes through TURN, hiding endpoints' addresses from their peers. */
  policy?: IcePolicy;
}

export const DEFAULT_ICE_TTL_SECONDS = 3600;

/** Checks a deployment's ICE options once, at start; errors name the option and what is allowed. */
export function checkIceOptions(o: IceOptions): void {
  o.stun.forEach((u) => {
    if (parseIceUrl(u, '--stun').scheme !== 'stun') throw new SweepError('INVALID_CONFIG', `--stun: "${u}" is a TURN URL; give it with --turn`);
  });
  o.turn.forEach((u) => {
    if (parseIceUrl(u, '--turn').scheme === 'stun') throw new SweepError('INVALID_CONFIG', `--turn: "${u}" is a STUN URL; give it with --stun`);
  });
  if (o.turn.length && !o.secret) throw new SweepError('INVALID_CONFIG', '--turn needs --turn-secret-file: the secret shared with the TURN server (coturn static-auth-secret)');
  if (o.secret !== undefined && o.secret.length < 16) throw new SweepError('INVALID_CONFIG', '--turn-secret-file: the secret has fewer than 16 characters');
  const ttl = o.ttlSeconds ?? DEFAULT_ICE_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 120 || ttl > 86_400) throw new SweepError('INVALID_CONFIG', `--turn-ttl: ${ttl} is not a whole number of seconds from 120 to 86400`);
  if ((o.policy ?? 'all') === 'relay' && !o.turn.length) throw new SweepError('INVALID_CONFIG', '--relay-only needs at least one --turn server');
}

/**
 * A13: the ICE servers for one login, with TURN REST credentials (draft-uberti-behave-turn-rest,
 * coturn `use-auth-secret`): username "<expiry in s>:<account>", password base64(HMAC-SHA1(secret, username)).
 */
export function iceConfigFor(o: IceOptions, account: string, nowMs: number): IceConfig {
  const ttl = o.ttlSeconds ?? DEFAULT_ICE_TTL_SECONDS;
  const expiresAtSec = Math.floor(nowMs / 1000) + ttl;
  const servers: IceConfig['servers'] = [];
  if (o.stun.length) servers.push({ urls: [...o.stun] });
  if (o.turn.length && o.secret) {
    const username = `${expiresAtSec}:${account}`;
    const credential = createHmac('sha1', o.secret).update(username).digest('base64');
    servers.push({ urls: [...o.turn], username, credential });
  }
  return { servers, policy: o.policy ?? 'all', expiresAt: expiresAtSec * 1000 };
}

/** When to send fresh credentials: a quarter of the lifetime before expiry, at least a minute. */
export function iceRenewalDelayMs(o: IceOptions): number {
  const ttlMs = (o.ttlSeconds ?? DEFAULT_ICE_TTL_SECONDS) * 1000;
  return ttlMs - Math.max(60_000, ttlMs / 4);
}

export function iceConfigured(o: IceOptions | undefined): o is IceOptions {
  return o !== undefined && (o.stun.length > 0 || o.turn.length > 0);
}
