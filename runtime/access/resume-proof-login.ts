import { resumeProofMessage, type AccessCatalogue, type LoginResult } from '../../core/protocol/access.ts';
import type { EndpointKind } from '../../core/protocol/common.ts';
import type { RpcChannel } from '../../core/protocol/rpc.ts';
import type { CertificatePayload } from '../../platform/certificate.ts';
import type { Clock } from '../../core/clock.ts';
import { toSweepError } from '../../core/errors.ts';
import type { Logger } from '../../platform/log.ts';

/** A14: a certificate this close to its expiry is not used for a proof (the password renews it). */
const PROOF_MARGIN_MS = 60_000;

export interface ProofLoginInput {
  signProof?: ((text: string) => string | Promise<string>) | undefined;
  /** The certificate (token) of the last login and what it says. */
  certificate: string | undefined;
  payload: CertificatePayload | undefined;
  signingKeyRaw: string;
  dtlsFingerprint: string;
  kind: EndpointKind;
  label: string;
  clock: Clock;
  timeoutMs: number;
  log: Logger;
  /** A nonce the handshake brought (AccessSocket.handshakeNonce); without one, `challenge` asks for it. */
  nonce?: string | undefined;
}

/**
 * A14: after a first login, with a certificate for these very keys that is still valid for a
 * while: the certificate and a signed server nonce (the handshake's, or one asked for). Undefined when there is no such proof or
 * the server refuses it (UNAUTHORIZED, or UNKNOWN_TYPE from an older server): then the
 * password is used.
 */
export async function loginByProof(channel: RpcChannel<AccessCatalogue>, o: ProofLoginInput): Promise<LoginResult | undefined> {
  const { signProof, certificate, payload: cert } = o;
  if (!signProof || !certificate || !cert || cert.expiresAt - o.clock.now() < PROOF_MARGIN_MS) return undefined;
  if (cert.signingKey !== o.signingKeyRaw || cert.dtlsFingerprint !== o.dtlsFingerprint || cert.kind !== o.kind) return undefined;
  try {
    const nonce = o.nonce ?? (await channel.request('challenge', {}, { timeoutMs: o.timeoutMs })).nonce;
    const proof = await signProof(resumeProofMessage(nonce));
    const result = await channel.request('resumeProof', { certificate, nonce, proof, label: o.label }, { timeoutMs: o.timeoutMs });
    o.log.debug('logged in again with a resume proof');
    return result;
  } catch (err) {
    const code = toSweepError(err).code;
    if (code !== 'UNAUTHORIZED' && code !== 'UNKNOWN_TYPE') throw err;
    o.log.info({ code }, 'resume proof not accepted; logging in with the password');
    return undefined;
  }
}
