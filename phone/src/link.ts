import type { SignalPayload } from '../../core/protocol/access.ts';
import { CertificatePayload } from '../../core/protocol/certificate.ts';
import { peerCatalogue, type PeerCatalogue } from '../../core/protocol/peer.ts';
import { RpcChannel } from '../../core/protocol/rpc.ts';
import { Liveness } from '../../core/protocol/liveness.ts';
import { fingerprintFromSdp } from '../../core/wire/sdp.ts';
import { systemClock } from '../../core/clock.ts';
import { SweepError, toSweepError } from '../../core/errors.ts';
import { verifyToken } from './identity.ts';
import type { WebLog } from './log.ts';

export interface BrowserLinkOptions {
  peerId: string;
  linkId: string;
  certificate: RTCCertificate;
  /** Our endpoint certificate (A3), sent in hello (P2). */
  endpointCertificate: () => string;
  /** This page load's instance id, sent in hello (L6). */
  instance: string;
  /** The call this page carries on from before a reload, told in hello (L7). */
  resume?: string;
  serverKey: CryptoKey;
  sendSignal: (payload: SignalPayload) => void;
  log: WebLog;
  timeoutMs?: number;
}

/**
 * A link from the browser to one node endpoint (docs/protocol.md L1, L2, P1–P3). The browser
 * always offers: one audio transceiver (sendrecv) and the `ctl` data channel go into the first
 * offer; the node side answers with its audio on the offer's mid and payload type. `ready`
 * resolves with the peer's verified certificate once both hellos are through.
 */
export class BrowserLink {
  readonly pc: RTCPeerConnection;
  readonly rpc: RpcChannel<PeerCatalogue>;
  readonly audio: RTCRtpTransceiver;
  readonly ready: Promise<CertificatePayload>;
  /** The peer's audio; null until the track arrives. */
  remoteStream: MediaStream | null = null;
  private readonly dc: RTCDataChannel;
  private peerCert: CertificatePayload | undefined;
  private peerInstanceId: string | undefined;
  private readonly liveness: Liveness;
  private remoteFp: string | undefined;
  private remoteApplied = false;
  private readonly pendingCandidates: RTCIceCandidateInit[] = [];
  private closeReason: string | undefined;
  private readonly closedFns: Array<(reason: string) => void> = [];
  private readonly trackFns: Array<(s: MediaStream) => void> = [];

  constructor(private readonly opts: BrowserLinkOptions) {
    const log = opts.log;
    // No STUN/TURN: links stay on the local network, as on the node side (L2).
    this.pc = new RTCPeerConnection({ certificates: [opts.certificate], iceServers: [], bundlePolicy: 'max-bundle' });
    this.audio = this.pc.addTransceiver('audio', { direction: 'sendrecv' });
    this.dc = this.pc.createDataChannel('ctl', { ordered: true });
    this.rpc = new RpcChannel({
      catalogue: peerCatalogue,
      send: (text) => {
        if (this.dc.readyState !== 'open') throw new SweepError('CLOSED', `link to ${opts.peerId}: ctl is ${this.dc.readyState}`);
        this.dc.send(text);
      },
      log,
      timeoutMs: 5000,
      // P2: nothing but hello before the peer is authenticated.
      admit: (type) => {
        if (type !== 'hello' && !this.peerCert) throw new SweepError('UNAUTHORIZED', `${type} before hello`);
      },
    });
    // L5: a peer that says nothing for too long is dead; ICE consent alone takes ~30 s.
    const liveness = new Liveness({
      clock: systemClock,
      sendAlive: () => this.rpc.notify('link.alive', {}),
      onDead: (silentMs) => this.close(`peer silent for ${silentMs} ms (L5)`),
    });
    this.liveness = liveness;
    this.dc.onmessage = (ev) => {
      liveness.heard();
      if (typeof ev.data === 'string') this.rpc.receive(ev.data);
    };
    this.dc.onclose = () => this.close('peer closed ctl');
    this.pc.onicecandidate = (ev) => {
      const c = ev.candidate;
      if (c?.candidate) opts.sendSignal({ kind: 'candidate', linkId: opts.linkId, candidate: c.candidate, mid: c.sdpMid ?? '0' });
    };
    this.pc.onconnectionstatechange = () => {
      const s = this.pc.connectionState;
      if (s === 'failed' || s === 'closed' || s === 'disconnected') this.close(`connection ${s}`);
    };
    this.pc.ontrack = (ev) => {
      this.remoteStream = ev.streams[0] ?? new MediaStream([ev.track]);
      for (const fn of this.trackFns) fn(this.remoteStream);
    };

    let peerHello!: (c: CertificatePayload) => void;
    let peerHelloFailed!: (e: SweepError) => void;
    const peerHelloDone = new Promise<CertificatePayload>((res, rej) => {
      peerHello = res;
      peerHelloFailed = rej;
    });
    peerHelloDone.catch(() => undefined);
    this.rpc.handle('hello', async (body) => {
      if (this.peerCert) throw new SweepError('BAD_STATE', 'hello already received');
      try {
        const cert = await this.checkHello(body.certificate);
        this.peerCert = cert;
        this.peerInstanceId = body.instance;
        peerHello(cert);
        return {};
      } catch (err) {
        const e = toSweepError(err, 'UNAUTHORIZED');
        peerHelloFailed(e);
        setTimeout(() => this.close(`hello refused: ${e.message}`), 50);
        throw e;
      }
    });

    const timeoutMs = opts.timeoutMs ?? 8000;
    const rpc = this.rpc;
    this.ready = (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const failed = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new SweepError('TIMEOUT', `no verified link to ${opts.peerId} within ${timeoutMs} ms`)), timeoutMs);
        this.closedFns.push((reason) => reject(new SweepError('CLOSED', `link to ${opts.peerId} closed: ${reason}`)));
      });
      try {
        const open = new Promise<void>((resolve) => {
          if (this.dc.readyState === 'open') resolve();
          else this.dc.addEventListener('open', () => resolve(), { once: true });
        });
        await Promise.race([open, failed]);
        const [, cert] = await Promise.race([
          Promise.all([rpc.request('hello', { v: 1, certificate: opts.endpointCertificate(), instance: opts.instance, ...(opts.resume ? { resume: opts.resume } : {}) }), peerHelloDone]),
          failed,
        ]);
        liveness.start();
        return cert;
      } catch (err) {
        const e = toSweepError(err, 'UNAUTHORIZED');
        this.close(e.message);
        throw e;
      } finally {
        clearTimeout(timer);
      }
    })();
    this.ready.catch(() => undefined);
    void this.offer().catch((err: unknown) => this.close(`offer failed: ${toSweepError(err).message}`));
  }

  get peerId(): string {
    return this.opts.peerId;
  }

  get linkId(): string {
    return this.opts.linkId;
  }

  get peer(): CertificatePayload | undefined {
    return this.peerCert;
  }

  /** The peer's instance id from its hello (L6). */
  get peerInstance(): string | undefined {
    return this.peerInstanceId;
  }

  get isClosed(): boolean {
    return this.closeReason !== undefined;
  }

  onClosed(fn: (reason: string) => void): void {
    if (this.closeReason !== undefined) fn(this.closeReason);
    else this.closedFns.push(fn);
  }

  onRemoteStream(fn: (s: MediaStream) => void): void {
    this.trackFns.push(fn);
    if (this.remoteStream) fn(this.remoteStream);
  }

  /** Sends this microphone track on the link's audio (null: send nothing). No renegotiation (L2). */
  async setSending(track: MediaStreamTrack | null): Promise<void> {
    if (this.isClosed) return;
    if (this.audio.sender.track !== track) await this.audio.sender.replaceTrack(track);
  }

  acceptSignal(p: SignalPayload): void {
    if (this.isClosed || p.linkId !== this.opts.linkId) return;
    if (p.kind === 'answer') {
      if (this.remoteApplied) return;
      this.remoteFp = fingerprintFromSdp(p.sdp);
      this.remoteApplied = true;
      this.pc.setRemoteDescription({ type: 'answer', sdp: p.sdp }).then(
        () => {
          for (const c of this.pendingCandidates.splice(0)) void this.addCandidate(c);
        },
        (err: unknown) => this.close(`answer rejected: ${toSweepError(err).message}`),
      );
    } else if (p.kind === 'candidate') {
      const c = { candidate: p.candidate.replace(/^a=/, ''), sdpMid: p.mid };
      if (this.pc.remoteDescription) void this.addCandidate(c);
      else this.pendingCandidates.push(c);
    }
  }

  close(reason = 'closed'): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    this.liveness.stop();
    this.rpc.close(`link to ${this.opts.peerId} closed: ${reason}`);
    try {
      this.dc.close();
      this.pc.close();
    } catch {
      // already closed
    }
    this.opts.log.info({ peer: this.opts.peerId, reason }, 'link closed');
    for (const fn of this.closedFns.splice(0)) {
      try {
        fn(reason);
      } catch (err) {
        this.opts.log.error({ err }, 'link close listener threw');
      }
    }
  }

  private async offer(): Promise<void> {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    const sdp = this.pc.localDescription?.sdp;
    if (!sdp) throw new SweepError('INTERNAL', 'no local offer');
    this.opts.sendSignal({ kind: 'offer', linkId: this.opts.linkId, sdp });
  }

  private async addCandidate(c: RTCIceCandidateInit): Promise<void> {
    try {
      await this.pc.addIceCandidate(c);
    } catch (err) {
      this.opts.log.debug({ err: toSweepError(err).message }, 'remote candidate rejected');
    }
  }

  /** P3: the server's signature, not expired, the expected endpoint, this link's DTLS fingerprint. */
  private async checkHello(certificate: string): Promise<CertificatePayload> {
    const cert = await verifyToken(certificate, this.opts.serverKey, CertificatePayload, 'certificate');
    if (cert.expiresAt <= Date.now()) throw new SweepError('EXPIRED', `certificate of ${cert.endpointId} expired`);
    if (cert.endpointId !== this.opts.peerId) {
      throw new SweepError('UNAUTHORIZED', `certificate is for ${cert.endpointId}, link was set up with ${this.opts.peerId}`);
    }
    if (!this.remoteFp || this.remoteFp !== cert.dtlsFingerprint.toUpperCase().replace(/^SHA-256/, 'sha-256')) {
      throw new SweepError('UNAUTHORIZED', `DTLS fingerprint of the link (${this.remoteFp ?? 'none'}) is not the certified one`);
    }
    return cert;
  }
}
