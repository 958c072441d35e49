import type { KeyObject } from 'node:crypto';
import { peerCatalogue, type PeerCatalogue } from '../../core/protocol/peer.ts';
import { RpcChannel } from '../../core/protocol/rpc.ts';
import { Liveness } from '../../core/protocol/liveness.ts';
import { verifyCertificate, type CertificatePayload } from '../../platform/certificate.ts';
import { SweepError, toSweepError } from '../../core/errors.ts';
import type { Clock, TimerHandle } from '../../core/clock.ts';
import type { Logger } from '../../platform/log.ts';
import type { PeerTransport } from './transport.ts';

export interface LinkOptions {
  transport: PeerTransport;
  /** The endpoint id the relay says is on the other side (P3). */
  expectedPeer: string;
  /** The account the relay says the other side belongs to, when it said (P3). */
  expectedAccount?: string;
  /** Our own certificate, sent in hello. */
  certificate: () => string;
  /** This process's instance id, sent in hello (L6). */
  instance: string;
  serverPublicKey: KeyObject;
  clock: Clock;
  log: Logger;
  /** Transport set-up deadline (ICE + DTLS + ctl open). */
  openTimeoutMs?: number;
  /** P2: a verified hello within this long after `ctl` opened, or the link is closed. */
  helloTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** L5 knobs (tests). */
  liveness?: { intervalMs: number; deadAfterMs: number };
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
  private peerInstanceId: string | undefined;
  private peerResumeId: string | undefined;
  private readonly liveness: Liveness;
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
    const liveness = new Liveness({
      clock: opts.clock,
      sendAlive: () => this.rpc.notify('link.alive', {}),
      onDead: (silentMs) => this.close(`peer silent for ${silentMs} ms (L5)`),
      ...opts.liveness,
    });
    this.liveness = liveness;
    opts.transport.onText((text) => {
      liveness.heard();
      this.rpc.receive(text);
    });
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
        this.peerInstanceId = body.instance;
        this.peerResumeId = body.resume;
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
      const openMs = opts.openTimeoutMs ?? 8000;
      const helloMs = opts.helloTimeoutMs ?? 5000;
      let timeout!: (err: SweepError) => void;
      const timedOut = new Promise<never>((_, reject) => (timeout = reject));
      const arm = (ms: number, what: string) => {
        if (this.helloTimer) opts.clock.clear(this.helloTimer);
        this.helloTimer = opts.clock.setTimeout(() => timeout(new SweepError('TIMEOUT', `${what} within ${ms} ms`)), ms);
      };
      const closed = new Promise<never>((_, reject) => {
        this.closedListeners.push((reason) => reject(new SweepError('CLOSED', `link closed: ${reason}`)));
      });
      try {
        arm(openMs, `no link to ${opts.expectedPeer} opened`);
        await Promise.race([opts.transport.opened, timedOut, closed]);
        // P2: the hello deadline runs from the moment ctl is open.
        arm(helloMs, `no verified hello from ${opts.expectedPeer}`);
        const [, cert] = await Promise.race([
          Promise.all([rpc.request('hello', { v: 1, certificate: opts.certificate(), instance: opts.instance }), peerHelloDone]),
          timedOut,
          closed,
        ]);
        liveness.start();
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

  /** The engine's media handle for this link (core/engine/ports.ts): its transport. */
  get media(): PeerTransport {
    return this.opts.transport;
  }

  /** The peer's verified certificate; undefined until `ready`. */
  get peer(): CertificatePayload | undefined {
    return this.peerCert;
  }

  /** The peer's instance id from its hello (L6); undefined until `ready`. */
  get peerInstance(): string | undefined {
    return this.peerInstanceId;
  }

  /** The call the peer's new instance said it carries on (hello `resume`, L7). */
  get peerResume(): string | undefined {
    return this.peerResumeId;
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
    this.liveness.stop();
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
    if (this.opts.expectedAccount !== undefined && cert.account !== this.opts.expectedAccount) {
      throw new SweepError('UNAUTHORIZED', `certificate is of account ${cert.account}, the relay said ${this.opts.expectedAccount}`);
    }
    const seen = this.opts.transport.remoteFingerprint();
    if (!seen || seen.toUpperCase() !== cert.dtlsFingerprint.toUpperCase()) {
      throw new SweepError('UNAUTHORIZED', `DTLS fingerprint of the link (${seen ?? 'none'}) is not the certified one`);
    }
    return cert;
  }
}
