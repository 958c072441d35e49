import type { KeyObject } from 'node:crypto';
import { CertificatePayload } from '../core/protocol/certificate.ts';
import { SweepError } from '../core/errors.ts';
import { signToken, verifyToken } from './token.ts';

export { CertificatePayload };

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
