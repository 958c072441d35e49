import { z } from 'zod';
import { SweepError } from '../errors.ts';

/**
 * A13: the STUN and TURN servers the access server hands each endpoint at login, with TURN
 * credentials that expire (the TURN REST scheme: username "<expiry>:<account>", password an HMAC
 * of it with the secret shared by the access server and the TURN server), renewed by an `ice`
 * note before they expire. Absent: links stay on the local network (no STUN, no TURN).
 */

const ICE_URL = /^(stun|turn|turns):(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(?:\?transport=(udp|tcp))?$/;

export const IceServerUrl = z.string().max(256).regex(ICE_URL, 'stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT]');

export const IceServer = z.strictObject({
  urls: z.array(IceServerUrl).min(1).max(8),
  username: z.string().max(256).optional(),
  credential: z.string().max(256).optional(),
});
export type IceServer = z.infer<typeof IceServer>;

export const IcePolicy = z.enum(['all', 'relay']);
export type IcePolicy = z.infer<typeof IcePolicy>;

export const IceConfig = z.strictObject({
  servers: z.array(IceServer).max(8),
  /** A13: `relay` makes every link go through a TURN relay, so no peer learns this endpoint's addresses. */
  policy: IcePolicy,
  /** When the TURN credentials stop working (ms since the epoch); a fresh `ice` note comes before. */
  expiresAt: z.number().int(),
});
export type IceConfig = z.infer<typeof IceConfig>;

export interface ParsedIceUrl {
  scheme: 'stun' | 'turn' | 'turns';
  host: string;
  port: number;
  transport: 'udp' | 'tcp';
}

/** Splits a STUN/TURN URL (RFC 7064, RFC 7065); throws SweepError INVALID_CONFIG naming what is allowed. */
export function parseIceUrl(url: string, field = 'url'): ParsedIceUrl {
  const m = ICE_URL.exec(url);
  if (!m) throw new SweepError('INVALID_CONFIG', `${field}: "${url}" is not a STUN or TURN URL; allowed: stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp], turns:HOST[:PORT]`);
  const scheme = m[1] as ParsedIceUrl['scheme'];
  const host = m[2]!.replace(/^\[|\]$/g, '');
  const port = m[3] ? Number(m[3]) : scheme === 'turns' ? 5349 : 3478;
  if (port < 1 || port > 65_535) throw new SweepError('INVALID_CONFIG', `${field}: port ${port} in "${url}" is not 1–65535`);
  if (scheme === 'turns' && m[4] === 'udp') throw new SweepError('INVALID_CONFIG', `${field}: "${url}": turns: runs over TLS, so over TCP only`);
  const transport = scheme === 'turns' ? 'tcp' : (m[4] as 'udp' | 'tcp' | undefined) ?? 'udp';
  return { scheme, host, port, transport };
}
