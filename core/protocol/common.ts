import { z } from 'zod';

/** Shared field shapes used by both the access protocol and the peer protocol. */
export const EndpointId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'an endpoint id: 1-64 of a-z 0-9 . _ -, starting with a letter or digit');
export const AccountName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'an account name: 1-64 of a-z 0-9 . _ -, starting with a letter or digit');
export const EndpointKind = z.enum(['deskphone', 'intercom', 'phone', 'browser']);
export type EndpointKind = z.infer<typeof EndpointKind>;

/** base64url, no padding. */
export const B64u = z.string().regex(/^[A-Za-z0-9_-]+$/, 'base64url text').max(8192);
/** An Ed25519 public key: 32 raw bytes, base64url. */
export const SigningKey = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'an Ed25519 public key (32 bytes, base64url)');
/** As in SDP: "sha-256 AB:CD:…" (32 hex pairs). */
export const DtlsFingerprint = z
  .string()
  .regex(/^sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$/, 'a DTLS fingerprint "sha-256 XX:…" (32 upper-case hex pairs)');
export const Id = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/, 'an id of A-Z a-z 0-9 _ -');

export const EndpointInfo = z.strictObject({
  endpointId: EndpointId,
  account: AccountName,
  kind: EndpointKind,
  label: z.string().max(64),
  online: z.boolean(),
});
export type EndpointInfo = z.infer<typeof EndpointInfo>;

/** The response envelope shared by every request/response channel. */
/** A17: `retryAfterMs`, the wait a busy server asks for; absent from older servers' errors. */
export const WireErrorSchema = z.strictObject({ code: z.string().max(64), message: z.string().max(1024), retryAfterMs: z.number().int().min(0).max(3_600_000).optional() });
