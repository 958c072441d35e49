import type { KeyObject } from 'node:crypto';
import { peerCatalogue, type PeerCatalogue } from '../protocol/peer.ts';
import { RpcChannel } from '../protocol/rpc.ts';
import { verifyCertificate, type CertificatePayload } from '../identity/certificate.ts';
import { SweepError, toSweepError } from '../util/errors.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import type { Logger } from '../util/log.ts';
import type { PeerTransport } from './transport.ts';

export interface LinkOptions {
  transport: PeerTransport;
  /** The endpoint id the relay says is on the other side (P3). */
  expectedPeer: string;
  /** Our own certificate, sent in hello. */
  certificate: () => string;
  serverPublicKey: KeyObject;
  clock: Clock;
  log: Logger;
  helloTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/**
 * An authenticated link to one peer: a transport plus the `ctl` request channel, usable once both
 * hellos are verified (P2, P3). `ready` resolves with the peer's certificate or rejects (the link
 * is then closed); `onClosed` fires once, whenever the link goes.
 */
export class Link {
  readonly rpc: RpcChannel<PeerCatalogue>;
  readonly ready: Promise<CertificatePayload>;
  private peerCert: CertificatePayload | undefined;
  private readonly closedListeners: Array<(reason: string) => void> = [];
  private closeReason: string | undefined;
  private helloTimer: TimerHandle | undefined;
  private badMessages = 0;

  constructor(private readonly opts: LinkOptions) {
    const log = opts.log;
    this.rpc = new RpcChannel({
      catalogue: peerCatalogue,
      send: (text) => opts.transport.sendText(text),
      log,
      clock: opts.clock,
      timeoutMs: opts.requestTimeoutMs ?? 5000,
      // P2: nothing but hello before the peer is authenticated.
      admit: (type) => {
        if (type !== 'hello' && !this.peerCert) throw new SweepError('UNAUTHORIZED', `${type} before hello`);
      },
      onBadMessage: () => {
        this.badMessages += 1;
      },
    });
    opts.transport.onText((text) => this.rpc.receive(text));
    opts.transport.onClosed((reason) => this.close(reason));

    let peerHello!: (cert: CertificatePayload) => void;
    let peerHelloFailed!: (err: SweepError) => void;
    const peerHelloDone = new Promise<CertificatePayload>((resolve, reject) => {
      peerHello = resolve;
      peerHelloFailed = reject;
    });
    this.rpc.handle('hello', (body) => {
      if (this.peerCert) throw new SweepError('BAD_STATE', 'hello already received');
      try {
        const cert = this.checkHello(body.certificate);
        this.peerCert = cert;
        peerHello(cert);
        return {};
      } catch (err) {
        const e = toSweepError(err, 'UNAUTHORIZED');
        peerHelloFailed(e);
        // Let the refusal reach the peer before the link goes.
        opts.clock.setTimeout(() => this.close(`hello refused: ${e.message}`), 50);
        throw e;
      }
    });

    const rpc = this.rpc;
    this.ready = (async () => {
      const timeoutMs = opts.helloTimeoutMs ?? 5000;
      const timedOut = new Promise<never>((_, reject) => {
        this.helloTimer = opts.clock.setTimeout(
          () => reject(new SweepError('TIMEOUT', `no verified hello from ${opts.expectedPeer} within ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      const closed = new Promise<never>((_, reject) => {
        this.closedListeners.push((reason) => reject(new SweepError('CLOSED', `link closed: ${reason}`)));
      });
      try {
        await Promise.race([opts.transport.opened, timedOut, closed]);
        const [, cert] = await Promise.race([
          Promise.all([rpc.request('hello', { v: 1, certificate: opts.certificate() }), peerHelloDone]),
          timedOut,
          closed,
        ]);
        return cert;
      } catch (err) {
        const e = toSweepError(err, 'UNAUTHORIZED');
        this.close(e.message);
        throw e;
      } finally {
        if (this.helloTimer) opts.clock.clear(this.helloTimer);
      }
    })();
    // A failed set-up is reported through `ready`; keep it from surfacing as unhandled.
    this.ready.catch(() => undefined);
    peerHelloDone.catch(() => undefined);
  }

  get peerId(): string {
    return this.opts.expectedPeer;
  }

  get transport(): PeerTransport {
    return this.opts.transport;
  }

  /** The peer's verified certificate; undefined until `ready`. */
  get peer(): CertificatePayload | undefined {
    return this.peerCert;
  }

  get isClosed(): boolean {
    return this.closeReason !== undefined;
  }

  get malformedCount(): number {
    return this.badMessages;
  }

  onClosed(fn: (reason: string) => void): void {
    if (this.closeReason !== undefined) fn(this.closeReason);
    else this.closedListeners.push(fn);
  }

  /** Idempotent: closes the transport, rejects pending requests, tells listeners once. */
  close(reason = 'closed'): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    if (this.helloTimer) this.opts.clock.clear(this.helloTimer);
    this.rpc.close(`link to ${this.opts.expectedPeer} closed: ${reason}`);
    this.opts.transport.close(reason);
    for (const fn of this.closedListeners.splice(0)) {
      try {
        fn(reason);
      } catch (err) {
        this.opts.log.error({ err }, 'link close listener threw');
      }
    }
  }

  /** P3: server signature, not expired, the expected endpoint, the fingerprint of this very link. */
  private checkHello(certificate: string): CertificatePayload {
    const cert = verifyCertificate(certificate, this.opts.serverPublicKey, this.opts.clock.now());
    if (cert.endpointId !== this.opts.expectedPeer) {
      throw new SweepError('UNAUTHORIZED', `certificate is for ${cert.endpointId}, link was set up with ${this.opts.expectedPeer}`);
    }
    const seen = this.opts.transport.remoteFingerprint();
    if (!seen || seen.toUpperCase() !== cert.dtlsFingerprint.toUpperCase()) {
      throw new SweepError('UNAUTHORIZED', `DTLS fingerprint of the link (${seen ?? 'none'}) is not the certified one`);
    }
    return cert;
  }
}
