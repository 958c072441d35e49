import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import { AccountName, DtlsFingerprint, EndpointId, EndpointKind, SigningKey } from '../protocol/common.ts';
import { SweepError } from '../util/errors.ts';
import { signToken, verifyToken } from './token.ts';

/** What the access server certifies about an endpoint at login (docs/protocol.md A3). */
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

export function issueCertificate(payload: CertificatePayload, serverKey: KeyObject): string {
  return signToken(payload, serverKey);
}

/** P3: the signature is the server's, the certificate has not expired. */
export function verifyCertificate(token: string, serverPublicKey: KeyObject, now: number): CertificatePayload {
  const cert = verifyToken(token, serverPublicKey, CertificatePayload, 'certificate');
  if (cert.expiresAt <= now) {
    throw new SweepError('EXPIRED', `certificate of ${cert.endpointId} expired at ${new Date(cert.expiresAt).toISOString()}`);
  }
  return cert;
}
