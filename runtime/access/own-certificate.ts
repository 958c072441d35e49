import type { LoginResult } from '../../core/protocol/access.ts';
import { verifyCertificate, type CertificatePayload } from '../../platform/certificate.ts';
import { SweepError } from '../../core/errors.ts';
import type { KeyObject } from 'node:crypto';

/** What this endpoint is: the certificate the server hands back must say exactly this. */
export interface OwnIdentity {
  username: string;
  endpointId: string;
  signingKeyRaw: string;
  dtlsFingerprint: string;
}

/** P3 for our own certificate: signed by our server, unexpired, and about our own keys. */
export function checkOwnCertificate(result: LoginResult, serverKey: KeyObject, nowMs: number, own: OwnIdentity): CertificatePayload {
  const cert = verifyCertificate(result.certificate, serverKey, nowMs);
  const mismatch = (
    [
      ['account', cert.account, own.username],
      ['endpointId', cert.endpointId, own.endpointId],
      ['signingKey', cert.signingKey, own.signingKeyRaw],
      ['dtlsFingerprint', cert.dtlsFingerprint, own.dtlsFingerprint],
      ['profile.endpointId', result.profile.endpointId, own.endpointId],
    ] as const
  ).find(([, got, want]) => got !== want);
  if (mismatch) {
    throw new SweepError('UNAUTHORIZED', `certificate: ${mismatch[0]} is "${mismatch[1]}", this endpoint's is "${mismatch[2]}"`);
  }
  return cert;
}
