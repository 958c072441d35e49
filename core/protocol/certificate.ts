import { z } from 'zod';
import { AccountName, DtlsFingerprint, EndpointId, EndpointKind, SigningKey } from './common.ts';

/**
 * What the access server certifies about an endpoint at login (docs/protocol.md A3). Kept in the
 * catalogue (no Node imports) so the browser client checks certificates with the same schema.
 */
export const CertificatePayload = z.strictObject({
  v: z.literal(1),
  account: AccountName,
  endpointId: EndpointId,
  kind: EndpointKind,
  label: z.string().max(64),
  signingKey: SigningKey,
  dtlsFingerprint: DtlsFingerprint,
  issuedAt: z.number().int(),
  expiresAt: z.number().int(),
});
export type CertificatePayload = z.infer<typeof CertificatePayload>;
