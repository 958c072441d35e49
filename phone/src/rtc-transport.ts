import type { SignalPayload } from '../../core/protocol/access.ts';
import type { LinkTransport } from '../../core/link/peer-link.ts';
import type { IceConfig } from '../../core/protocol/ice.ts';
import { fingerprintFromSdp } from '../../core/wire/sdp.ts';
import { SweepError, toSweepError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { diagnoseIce, type IceAttempt } from '../../core/link/ice-diagnosis.ts';

export interface RtcTransportOptions {
  linkId: string;
  certificate: RTCCertificate;
  sendSignal: (payload: SignalPayload) => void;
  log: Logger;
  /** A13: STUN/TURN servers and the relay policy from the access server; none: the local network only. */
  ice?: IceConfig | undefined;
}

/**
 * The page's side of a link (docs/protocol.md L1, L2): one RTCPeerConnection, always the offerer,
 * with one audio transceiver (sendrecv) and the `ctl` data channel in the first offer; the node
 * side answers with its audio on the offer's mid and payload type. The hello and liveness run
 * above it, in core/link/peer-link.ts, exactly as on the device.
 */
export class RtcTransport implements LinkTransport {
  readonly pc: RTCPeerConnection;
  readonly audio: RTCRtpTransceiver;
  readonly opened: Promise<void>;
  /** The peer's audio; null until the track arrives. */
  remoteStream: MediaStream | null = null;
  private readonly dc: RTCDataChannel;
  private remoteFp: string | undefined;
  private remoteApplied = false;
  private readonly pendingCandidates: RTCIceCandidateInit[] = [];
  private closeReason: string | undefined;
  private readonly closedFns: Array<(reason: string) => void> = [];
  private readonly textFns: Array<(text: string) => void> = [];
  private readonly trackFns: Array<(s: MediaStream) => void> = [];

  constructor(private readonly opts: RtcTransportOptions) {
    // A13: STUN/TURN when the deployment has them (as on the node side); else the local network only.
    this.pc = new RTCPeerConnection({
      certificates: [opts.certificate],
      iceServers: opts.ice?.servers ?? [],
      iceTransportPolicy: opts.ice?.policy ?? 'all',
      bundlePolicy: 'max-bundle',
    });
    this.audio = this.pc.addTransceiver('audio', { direction: 'sendrecv' });
    this.dc = this.pc.createDataChannel('ctl', { ordered: true });
    this.opened = new Promise<void>((resolve) => this.dc.addEventListener('open', () => resolve(), { once: true }));
    this.dc.onmessage = (ev) => {
      if (typeof ev.data === 'string') for (const fn of this.textFns) fn(ev.data);
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
    void this.offer().catch((err: unknown) => this.close(`offer failed: ${toSweepError(err).message}`));
  }

  get linkId(): string {
    return this.opts.linkId;
  }

  get isClosed(): boolean {
    return this.closeReason !== undefined;
  }

  remoteFingerprint(): string | undefined {
    return this.remoteFp;
  }

  sendText(text: string): void {
    if (this.dc.readyState !== 'open') throw new SweepError('CLOSED', `ctl is ${this.dc.readyState}`);
    this.dc.send(text);
  }

  onText(fn: (text: string) => void): void {
    this.textFns.push(fn);
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
    try {
      this.dc.close();
      this.pc.close();
    } catch {
      // already closed
    }
    for (const fn of this.closedFns.splice(0)) {
      try {
        fn(reason);
      } catch (err) {
        this.opts.log.error({ err }, 'transport close listener threw');
      }
    }
  }

  /** L8: what ICE gathered and heard back so far (getStats), in words. */
  async diagnose(): Promise<string | undefined> {
    const attempt: IceAttempt = { turnServers: this.opts.ice?.servers.filter((s) => s.urls.some((u) => u.startsWith('turn'))).length ?? 0, local: [], checksSent: 0, responsesReceived: 0 };
    (await this.pc.getStats()).forEach((r: { type: string; candidateType?: string; relayProtocol?: string; requestsSent?: number; responsesReceived?: number }) => {
      if (r.type === 'local-candidate') attempt.local.push({ type: r.candidateType ?? 'host', relayProtocol: r.relayProtocol });
      if (r.type === 'candidate-pair') {
        attempt.checksSent += r.requestsSent ?? 0;
        attempt.responsesReceived += r.responsesReceived ?? 0;
      }
    });
    return diagnoseIce(attempt);
  }

  /** L9: whether ICE's chosen pair starts at this page's own TURN relay. */
  async relayed(): Promise<boolean> {
    const stats = await this.pc.getStats();
    let selected: string | undefined;
    stats.forEach((r: { type: string; selectedCandidatePairId?: string }) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) selected = r.selectedCandidatePairId;
    });
    const pair = selected ? (stats.get(selected) as { localCandidateId?: string } | undefined) : undefined;
    const local = pair?.localCandidateId ? (stats.get(pair.localCandidateId) as { candidateType?: string } | undefined) : undefined;
    return local?.candidateType === 'relay';
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
}
