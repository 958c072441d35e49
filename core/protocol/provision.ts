import { z } from 'zod';
import { AccountName, EndpointId, SigningKey } from './common.ts';

/**
 * Provisioning (docs/provisioning.md): a device exchanges a one-time code, made by the operator
 * with `sweep server provision-code add`, for its own credential. HTTP POST /provision on the
 * access server, JSON both ways.
 */
export const PROVISION_PATH = '/provision';

/** A one-time provisioning code: 16 random bytes, base64url. */
export const ProvisionCode = z.string().regex(/^[A-Za-z0-9_-]{22}$/, 'a provisioning code (22 characters of A-Z a-z 0-9 _ -)');

export const ProvisionRequest = z.strictObject({
  code: ProvisionCode,
  account: AccountName,
  endpointId: EndpointId,
  /** The device's Ed25519 key, generated on the device; the credential only works with it. */
  signingKey: SigningKey,
  /** Generated on the device (≥ 32 random characters); the server keeps only its hash. */
  password: z.string().min(32).max(256),
});
export type ProvisionRequest = z.infer<typeof ProvisionRequest>;

export const ProvisionResponse = z.discriminatedUnion('status', [
  z.strictObject({ status: z.literal('ok'), data: z.strictObject({ account: AccountName, endpointId: EndpointId, serverPublicKey: SigningKey }) }),
  z.strictObject({ status: z.literal('error'), error: z.strictObject({ code: z.string().max(64), message: z.string().max(1000) }) }),
]);
export type ProvisionResponse = z.infer<typeof ProvisionResponse>;
