import type { SignalPayload } from '../protocol/access.ts';
import type { CertificatePayload } from '../protocol/certificate.ts';
import { peerCatalogue, type PeerCatalogue } from '../protocol/peer.ts';
import { RpcChannel } from '../protocol/rpc.ts';
import { Liveness } from '../protocol/liveness.ts';
import { SweepError, toSweepError } from '../errors.ts';
import type { Clock, TimerHandle } from '../clock.ts';
import type { Logger } from '../log.ts';

/**
 * What a link runs over: a node-datachannel PeerConnection on the device, an RTCPeerConnection in
 * the phone page. `ctl` is a reliable ordered channel of JSON text.
 */
export interface LinkTransport {
  /** Resolves when `ctl` is open (it may reject when set-up fails; the link handles both). */
  readonly opened: Promise<void>;
  /** The DTLS fingerprint in the peer's SDP ("sha-256 AB:…"), once the remote description is applied. */
  remoteFingerprint(): string | undefined;
  /** Feeds a signalling payload from the peer for this link. */
  acceptSignal(payload: SignalPayload): void;
  /** Sends one text message on `ctl`; throws SweepError CLOSED when it is not open. */
  sendText(text: string): void;
  onText(fn: (text: string) => void): void;
  onClosed(fn: (reason: string) => void): void;
  close(reason?: string): void;
  /** L8: why set-up has found no path so far, in words (core/link/ice-diagnosis.ts); asked when it times out. */
  diagnose?(): Promise<string | undefined>;
}

/** How long the open deadline waits for the transport's diagnosis before giving the bare reason. */
const DIAGNOSIS_WAIT_MS = 500;

export interface PeerLinkOptions<T extends LinkTransport> {
  transport: T;
  /** The endpoint id the relay says is on the other side (P3). */
  expectedPeer: string;
  /** The account the relay says the other side belongs to, when it said (P3). */
  expectedAccount?: string;
  /** Our own certificate, sent in hello. */
  certificate: () => string;
  /** This process's (or page load's) instance id, sent in hello (L6). */
  instance: string;
  /** The call this instance carries on from before a restart, sent in hello (L7). */
  resume?: string;
  /** P3: the access server's signature and the expiry; throws SweepError. Sync on node, async in the page. */
  verifyCertificate: (token: string) => CertificatePayload | Promise<CertificatePayload>;
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
 * An authenticated link to one peer (docs/protocol.md P2, P3, L5): a transport plus the `ctl`
 * request channel, usable once both hellos are verified. `ready` resolves with the peer's
 * certificate or rejects (the link is then closed); `onClosed` fires once, whenever the link goes.
 * The device and the phone page run this same class over their own transports.
 */
export class PeerLink<T extends LinkTransport = LinkTransport> {
  readonly rpc: RpcChannel<PeerCatalogue>;
  readonly ready: Promise<CertificatePayload>;
  private peerCert: CertificatePayload | undefined;
  private peerInstanceId: string | undefined;
  private peerResumeId: string | undefined;
  private helloSeen = false;
  private readonly liveness: Liveness;
  private readonly closedListeners: Array<(reason: string) => void> = [];
  private closeReason: string | undefined;
  private helloTimer: TimerHandle | undefined;
  private badMessages = 0;

  constructor(private readonly opts: PeerLinkOptions<T>) {
    const { clock, log, transport } = opts;
    this.rpc = new RpcChannel({
      catalogue: peerCatalogue,
      send: (text) => transport.sendText(text),
      log,
      clock,
      timeoutMs: opts.requestTimeoutMs ?? 5000,
      // P2: nothing but hello before the peer is authenticated.
      admit: (type) => {
        if (type !== 'hello' && !this.peerCert) throw new SweepError('UNAUTHORIZED', `${type} before hello`);
      },
      onBadMessage: () => {
        this.badMessages += 1;
      },
    });
    // L5: a peer that says nothing for too long is dead; ICE consent alone takes ~30 s.
    const liveness = new Liveness({
      clock,
      sendAlive: () => this.rpc.notify('link.alive', {}),
      onDead: (silentMs) => this.close(`peer silent for ${silentMs} ms (L5)`),
      ...opts.liveness,
    });
    this.liveness = liveness;
    transport.onText((text) => {
      liveness.heard();
      this.rpc.receive(text);
    });
    transport.onClosed((reason) => this.close(reason));

    let peerHello!: (cert: CertificatePayload) => void;
    let peerHelloFailed!: (err: SweepError) => void;
    const peerHelloDone = new Promise<CertificatePayload>((resolve, reject) => {
      peerHello = resolve;
      peerHelloFailed = reject;
    });
    this.rpc.handle('hello', async (body) => {
      // Set before the await: a second hello during verification is refused too.
      if (this.helloSeen) throw new SweepError('BAD_STATE', 'hello already received');
      this.helloSeen = true;
      try {
        const cert = this.checkPeer(await opts.verifyCertificate(body.certificate));
        this.peerCert = cert;
        this.peerInstanceId = body.instance;
        this.peerResumeId = body.resume;
        peerHello(cert);
        return {};
      } catch (err) {
        const e = toSweepError(err, 'UNAUTHORIZED');
        peerHelloFailed(e);
        // Let the refusal reach the peer before the link goes.
        clock.setTimeout(() => this.close(`hello refused: ${e.message}`), 50);
        throw e;
      }
    });

    this.ready = this.setUp(peerHelloDone);
    // A failed set-up is reported through `ready`; keep it from surfacing as unhandled.
    this.ready.catch(() => undefined);
    peerHelloDone.catch(() => undefined);
  }

  get peerId(): string {
    return this.opts.expectedPeer;
  }

  get transport(): T {
    return this.opts.transport;
  }

  /** The engine's media handle for this link (core/engine/ports.ts): its transport. */
  get media(): T {
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

  private async setUp(peerHelloDone: Promise<CertificatePayload>): Promise<CertificatePayload> {
    const { opts } = this;
    const openMs = opts.openTimeoutMs ?? 8000;
    const helloMs = opts.helloTimeoutMs ?? 5000;
    let timeout!: (err: SweepError) => void;
    const timedOut = new Promise<never>((_, reject) => (timeout = reject));
    const arm = (ms: number, what: string, diagnose?: () => Promise<string | undefined>): void => {
      if (this.helloTimer) opts.clock.clear(this.helloTimer);
      this.helloTimer = opts.clock.setTimeout(() => {
        const bare = `${what} within ${ms} ms`;
        if (diagnose) void this.withDiagnosis(bare, diagnose).then((reason) => timeout(new SweepError('TIMEOUT', reason)));
        else timeout(new SweepError('TIMEOUT', bare));
      }, ms);
    };
    const closed = new Promise<never>((_, reject) => {
      this.closedListeners.push((reason) => reject(new SweepError('CLOSED', `link closed: ${reason}`)));
    });
    try {
      arm(openMs, `no link to ${opts.expectedPeer} opened`, opts.transport.diagnose?.bind(opts.transport));
      await Promise.race([opts.transport.opened, timedOut, closed]);
      // P2: the hello deadline runs from the moment ctl is open.
      arm(helloMs, `no verified hello from ${opts.expectedPeer}`);
      const hello = { v: 1 as const, certificate: opts.certificate(), instance: opts.instance, ...(opts.resume ? { resume: opts.resume } : {}) };
      const [, cert] = await Promise.race([Promise.all([this.rpc.request('hello', hello), peerHelloDone]), timedOut, closed]);
      this.liveness.start();
      return cert;
    } catch (err) {
      const e = toSweepError(err, 'UNAUTHORIZED');
      this.close(e.message);
      throw e;
    } finally {
      if (this.helloTimer) opts.clock.clear(this.helloTimer);
    }
  }

  /** L8: the bare timeout reason plus the transport's diagnosis, if it gives one in time. */
  private async withDiagnosis(bare: string, diagnose: () => Promise<string | undefined>): Promise<string> {
    let timer: TimerHandle | undefined;
    const late = new Promise<undefined>((resolve) => (timer = this.opts.clock.setTimeout(() => resolve(undefined), DIAGNOSIS_WAIT_MS)));
    try {
      const why = await Promise.race([diagnose().catch(() => undefined), late]);
      return why ? `${bare}: ${why}` : bare;
    } finally {
      if (timer) this.opts.clock.clear(timer);
    }
  }

  /** P3: the expected endpoint and account, and the fingerprint of this very link. */
  private checkPeer(cert: CertificatePayload): CertificatePayload {
    const { opts } = this;
    if (cert.endpointId !== opts.expectedPeer) {
      throw new SweepError('UNAUTHORIZED', `certificate is for ${cert.endpointId}, link was set up with ${opts.expectedPeer}`);
    }
    if (opts.expectedAccount !== undefined && cert.account !== opts.expectedAccount) {
      throw new SweepError('UNAUTHORIZED', `certificate is of account ${cert.account}, the relay said ${opts.expectedAccount}`);
    }
    const seen = opts.transport.remoteFingerprint();
    if (!seen || seen.toUpperCase() !== cert.dtlsFingerprint.toUpperCase()) {
      throw new SweepError('UNAUTHORIZED', `DTLS fingerprint of the link (${seen ?? 'none'}) is not the certified one`);
    }
    return cert;
  }
}
