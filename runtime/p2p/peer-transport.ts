import nodeDataChannel, {
  type DataChannel,
  type PeerConnection,
  type RtpPacketizationConfig,
  type Track,
} from 'node-datachannel';
import { randomInt } from 'node:crypto';
import { SignalPayload } from '../../core/protocol/access.ts';
import { parseRtp } from '../media/rtp.ts';
import { SweepError } from '../../core/errors.ts';
import type { Logger } from '../../platform/log.ts';
import { iceRtcConfig } from './ice-servers.ts';
import type { LinkPath, PeerTransport, TransportOptions } from './transport.ts';
import { audioOfOffer, fingerprintFromSdp } from '../../core/wire/sdp.ts';
import { CandidateFilter } from './candidate-filter.ts';
import { rtcLogFromEnv } from './rtc-log.ts';
import { DEFAULT_RECIPE, recipeRules, type RecipeRules, type SetupRecipe } from './setup-recipe.ts';

export { DEFAULT_RECIPE, type SetupRecipe } from './setup-recipe.ts';

export const OPUS_PT = 111;
export const OPUS_FMTP = 'minptime=10;useinbandfec=1;stereo=0;sprop-stereo=0';
const AUDIO_MID = 'audio';
const CTL_LABEL = 'ctl';
/** 20 ms at 48 kHz. */
const TS_PER_FRAME = 960;
const DEFAULT_OPEN_TIMEOUT_MS = 10_000;
const MAX_PENDING_CANDIDATES = 64;

export interface PeerTransportTuning {
  recipe?: SetupRecipe;
}

type State = 'connecting' | 'open' | 'closed';

const noop = (): void => {};

rtcLogFromEnv(process.env.SWEEP_RTC_LOG);

/**
 * One node-datachannel PeerConnection carrying `ctl` and one Opus track (see transport.ts), set up
 * by the recipe's rules (setup-recipe.ts).
 * Native callbacks are dispatched through `guard`, so nothing thrown ever reaches libdatachannel.
 */
class NdcPeerTransport implements PeerTransport {
  readonly linkId: string;
  readonly role: 'offerer' | 'answerer';
  readonly opened: Promise<void>;

  readonly #opts: TransportOptions;
  readonly #log: Logger;
  readonly #candidates: CandidateFilter;
  readonly #recipe: RecipeRules;
  // Strong references: a collected wrapper closes its native object (FINDINGS).
  #pc: PeerConnection | undefined;
  #dc: DataChannel | undefined;
  #track: Track | undefined;
  #rtpConfig: RtpPacketizationConfig | undefined;
  /** Audio description and media handlers, held so the GC never collects them mid-call. */
  readonly #handlers: unknown[] = [];

  #state: State = 'connecting';
  #closeReason = '';
  #remoteFingerprint: string | undefined;
  #remoteApplied = false;
  #pendingRemote: { candidate: string; mid: string }[] = [];
  #heldLocal: { candidate: string; mid: string }[] = [];
  #localReleased = false;
  #fallbackTimer: NodeJS.Timeout | undefined;
  #timer: NodeJS.Timeout | undefined;
  #resolveOpen: () => void = noop;
  #rejectOpen: (err: SweepError) => void = noop;
  #textFns: ((text: string) => void)[] = [];
  #audioFns: ((opus: Uint8Array, seq: number, timestamp: number) => void)[] = [];
  #closedFns: ((reason: string) => void)[] = [];
  #audioPt = OPUS_PT;
  /** performance.now() of the last audio frame sent; RTP time skips the pauses. */
  #lastAudioAt: number | undefined;

  constructor(opts: TransportOptions, log: Logger, tuning: PeerTransportTuning) {
    this.#opts = opts;
    this.linkId = opts.linkId;
    this.role = opts.role;
    this.#log = log.child({ linkId: opts.linkId, role: opts.role });
    this.#candidates = new CandidateFilter(opts.bindAddress, (addr) => this.#log.debug({ addr }, 'non-loopback candidate dropped'));
    this.#recipe = recipeRules(tuning.recipe ?? DEFAULT_RECIPE);
    this.opened = new Promise<void>((resolve, reject) => {
      this.#resolveOpen = resolve;
      this.#rejectOpen = reject;
    });
    // A caller that never awaits `opened` must not crash the process on a failed set-up.
    this.opened.catch(noop);

    let pc: PeerConnection;
    try {
      pc = new nodeDataChannel.PeerConnection(opts.linkId, {
        // A13: STUN/TURN from the access server when a deployment has them; else the local network only.
        ...iceRtcConfig(opts.ice),
        bindAddress: opts.bindAddress,
        enableIceTcp: false,
        certificatePemFile: opts.dtlsCertFile,
        keyPemFile: opts.dtlsKeyFile,
      });
    } catch (err) {
      throw new SweepError('INVALID_CONFIG', `link ${opts.linkId}: cannot create a peer connection bound to ` +
        `${opts.bindAddress} with certificate ${opts.dtlsCertFile}: ${String(err)}`, { cause: err });
    }
    this.#pc = pc;
    const timeoutMs = opts.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
    this.#timer = setTimeout(() => {
      this.#fail(new SweepError('TIMEOUT', `link ${this.linkId} did not open within ${timeoutMs} ms`));
    }, timeoutMs);
    // Registered before any channel exists, or the first description/candidates are missed.
    pc.onLocalDescription((sdp, type) => this.#guard('localDescription', () => this.#onLocalDescription(sdp, type)));
    pc.onLocalCandidate((candidate, mid) => this.#guard('localCandidate', () => this.#onLocalCandidate(candidate, mid)));
    pc.onStateChange((state) => this.#guard('stateChange', () => this.#onStateChange(state)));
    pc.onIceStateChange((state) => this.#guard('iceStateChange', () => this.#onIceStateChange(state)));
    pc.onDataChannel((dc) => this.#guard('dataChannel', () => this.#onDataChannel(dc)));

    if (opts.role === 'offerer') {
      // The audio track goes in before the data channel, so the first offer carries both.
      this.#addAudio(AUDIO_MID, OPUS_PT);
      this.#adoptDataChannel(pc.createDataChannel(CTL_LABEL));
    }
  }

  get isOpen(): boolean {
    return this.#state === 'open';
  }

  remoteFingerprint(): string | undefined {
    return this.#remoteFingerprint;
  }

  selectedPath(): LinkPath | undefined {
    if (!this.#pc) return undefined;
    try {
      const pair = this.#pc.getSelectedCandidatePair();
      return pair ? { local: pair.local.type, remote: pair.remote.type, transport: pair.local.transportType } : undefined;
    } catch {
      return undefined;
    }
  }

  acceptSignal(payload: SignalPayload): void {
    try {
      this.#acceptSignal(payload);
    } catch (err) {
      this.#log.warn({ err }, 'signal handling failed');
    }
  }

  sendText(text: string): void {
    const dc = this.#dc;
    if (this.#state !== 'open' || !dc) {
      throw new SweepError('CLOSED', `link ${this.linkId} is ${this.#state}: cannot send on ctl`);
    }
    let ok: boolean;
    try {
      ok = dc.sendMessage(text);
    } catch (err) {
      throw new SweepError('CLOSED', `link ${this.linkId}: ctl send failed`, { cause: err });
    }
    if (!ok) this.#log.debug('ctl message buffered');
  }

  onText(fn: (text: string) => void): void {
    this.#textFns.push(fn);
  }

  sendAudio(opusFrame: Uint8Array): void {
    const track = this.#track;
    const cfg = this.#rtpConfig;
    if (this.#state !== 'open' || !track || !cfg) return;
    try {
      if (!track.isOpen()) return;
      // RTP time follows the sampling clock through pauses (RFC 3550 5.1): after a pause (this link
      // was not a send target) the timestamp jumps by the time that passed, so a receiver's jitter
      // buffer (Chrome's NetEq) does not take the resumed frames for late ones.
      const now = performance.now();
      const missed = this.#lastAudioAt === undefined ? 0 : Math.round((now - this.#lastAudioAt) / 20) - 1;
      if (missed > 2) cfg.timestamp = (cfg.timestamp + missed * TS_PER_FRAME) >>> 0;
      this.#lastAudioAt = now;
      track.sendMessageBinary(Buffer.from(opusFrame.buffer, opusFrame.byteOffset, opusFrame.byteLength));
      // The packetizer stamps what the config holds; the caller owns the media clock.
      cfg.timestamp = (cfg.timestamp + TS_PER_FRAME) >>> 0;
    } catch (err) {
      this.#log.debug({ err }, 'audio send failed');
    }
  }

  onAudio(fn: (opus: Uint8Array, seq: number, timestamp: number) => void): void {
    this.#audioFns.push(fn);
  }

  onClosed(fn: (reason: string) => void): void {
    if (this.#state === 'closed') {
      const reason = this.#closeReason;
      queueMicrotask(() => this.#call('onClosed listener', () => fn(reason)));
      return;
    }
    this.#closedFns.push(fn);
  }

  close(reason = 'closed'): void {
    if (this.#state === 'closed') return;
    const wasOpen = this.#state === 'open';
    this.#state = 'closed';
    this.#closeReason = reason;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#fallbackTimer) clearTimeout(this.#fallbackTimer);
    this.#fallbackTimer = undefined;
    if (!wasOpen) this.#rejectOpen(new SweepError('CLOSED', `link ${this.linkId} closed before it opened: ${reason}`));
    this.#log.debug({ reason }, 'link closed');

    const { dc, track, pc } = { dc: this.#dc, track: this.#track, pc: this.#pc };
    // Replacing each callback with a no-op drops the closures that reference this object.
    for (const [what, fn] of [
      ['dc', () => dc && (dc.onOpen(noop), dc.onClosed(noop), dc.onError(noop), dc.onMessage(noop), dc.close())],
      ['track', () => track && (track.onOpen(noop), track.onClosed(noop), track.onError(noop), track.onMessage(noop), track.close())],
      ['pc', () => pc && (pc.onLocalDescription(noop), pc.onLocalCandidate(noop), pc.onStateChange(noop), pc.onIceStateChange(noop),
        pc.onDataChannel(noop), pc.onTrack(noop), pc.close())],
    ] as const) {
      try {
        fn();
      } catch (err) {
        this.#log.debug({ err, what }, 'native close failed');
      }
    }
    this.#dc = undefined;
    this.#track = undefined;
    this.#pc = undefined;
    this.#rtpConfig = undefined;
    this.#handlers.length = 0;
    this.#pendingRemote = [];
    this.#heldLocal = [];
    this.#textFns = [];
    this.#audioFns = [];
    const fns = this.#closedFns;
    this.#closedFns = [];
    for (const fn of fns) this.#call('onClosed listener', () => fn(reason));
  }

  // ---- internals ----

  /** Every native callback body runs here: an escaping exception would abort the process. */
  #guard(what: string, fn: () => void): void {
    if (this.#state === 'closed') return;
    try {
      fn();
    } catch (err) {
      this.#log.error({ err, what }, 'native callback failed');
      this.#fail(new SweepError('INTERNAL', `link ${this.linkId}: ${what} failed`, { cause: err }));
    }
  }

  /** A user listener: its exceptions are logged, never propagated. */
  #call(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.warn({ err, what }, 'listener threw');
    }
  }

  #fail(err: SweepError): void {
    if (this.#state === 'closed') return;
    if (this.#state === 'connecting') {
      this.#rejectOpen(err);
      this.#log.info({ code: err.code, msg: err.message }, 'link set-up failed');
    }
    this.close(err.message);
  }

  #signal(payload: SignalPayload): void {
    this.#call('sendSignal', () => this.#opts.sendSignal(payload));
  }

  #addAudio(mid: string, pt: number): void {
    const pc = this.#pc!;
    const ssrc = randomInt(1, 0xffff_ffff);
    const audio = new nodeDataChannel.Audio(mid, 'SendRecv');
    audio.addOpusCodec(pt, OPUS_FMTP);
    audio.addSSRC(ssrc, 'sweep', 'sweep', 'audio');
    const track = pc.addTrack(audio);
    const cfg = new nodeDataChannel.RtpPacketizationConfig(ssrc, 'sweep', pt, 48_000);
    cfg.timestamp = randomInt(0, 0xffff_ffff);
    const packetizer = new nodeDataChannel.RtpPacketizer(cfg);
    const sr = new nodeDataChannel.RtcpSrReporter(cfg);
    const nack = new nodeDataChannel.RtcpNackResponder();
    packetizer.addToChain(sr);
    packetizer.addToChain(nack);
    track.setMediaHandler(packetizer);
    // Every audio packet comes through here: no closure per packet (#guard's work, inline).
    track.onMessage((msg) => {
      if (this.#state === 'closed') return;
      try {
        this.#onRtp(msg);
      } catch (err) {
        this.#log.error({ err, what: 'trackMessage' }, 'native callback failed');
        this.#fail(new SweepError('INTERNAL', `link ${this.linkId}: trackMessage failed`, { cause: err }));
      }
    });
    track.onError((err) => this.#guard('trackError', () => this.#log.debug({ err }, 'track error')));
    this.#track = track;
    this.#rtpConfig = cfg;
    this.#handlers.push(audio, packetizer, sr, nack);
    this.#audioPt = pt;
  }

  #adoptDataChannel(dc: DataChannel): void {
    this.#dc = dc;
    dc.onOpen(() => this.#guard('dcOpen', () => this.#onOpen()));
    dc.onClosed(() => this.#guard('dcClosed', () => this.close('peer closed ctl')));
    dc.onError((err) => this.#guard('dcError', () => this.#fail(new SweepError('CLOSED', `ctl error: ${err}`))));
    dc.onMessage((msg) => this.#guard('dcMessage', () => this.#onText(msg)));
    // An incoming channel may already be open when it is handed over.
    if (dc.isOpen()) this.#onOpen();
  }

  #onOpen(): void {
    if (this.#state !== 'connecting') return;
    this.#state = 'open';
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#log.debug('link open');
    this.#resolveOpen();
  }

  #onLocalDescription(sdp: string, type: string): void {
    if (type === 'offer') {
      this.#signal({ kind: 'offer', linkId: this.linkId, sdp: this.#recipe.offer(sdp) });
    } else if (type === 'answer') {
      this.#signal({ kind: 'answer', linkId: this.linkId, sdp });
    }
  }

  #onLocalCandidate(candidate: string, mid: string): void {
    if (this.role === 'offerer') {
      if (!this.#recipe.offererSendsCandidates) return; // found as peer-reflexive
      if (!this.#localReleased) {
        this.#heldLocal.push({ candidate, mid });
        return;
      }
    }
    this.#signal({ kind: 'candidate', linkId: this.linkId, candidate, mid });
  }

  #onStateChange(state: string): void {
    this.#log.debug({ state }, 'pc state');
    if (state === 'failed' || state === 'closed') {
      this.#fail(new SweepError('CLOSED', `link ${this.linkId} ${state}`));
    } else if (state === 'disconnected' && this.#state === 'open') {
      this.close('peer disconnected');
    }
  }

  #onIceStateChange(state: string): void {
    this.#log.debug({ state }, 'ice state');
    if ((state === 'connected' || state === 'completed') && this.#remoteApplied) this.#releaseLocal();
  }

  /** Sends the offerer's held candidates, once. */
  #releaseLocal(): void {
    if (this.#localReleased) return;
    this.#localReleased = true;
    if (this.#fallbackTimer) clearTimeout(this.#fallbackTimer);
    this.#fallbackTimer = undefined;
    for (const c of this.#heldLocal.splice(0)) {
      this.#signal({ kind: 'candidate', linkId: this.linkId, candidate: c.candidate, mid: c.mid });
    }
  }

  #onDataChannel(dc: DataChannel): void {
    if (dc.getLabel() !== CTL_LABEL || this.#dc) {
      this.#log.warn({ label: dc.getLabel() }, 'unexpected data channel closed');
      dc.close();
      return;
    }
    this.#adoptDataChannel(dc);
  }

  #onText(msg: string | Buffer | ArrayBuffer): void {
    if (typeof msg !== 'string') {
      this.#log.debug('binary ctl message dropped');
      return;
    }
    for (const fn of this.#textFns) this.#call('onText listener', () => fn(msg));
  }

  #onRtp(msg: Buffer): void {
    const pkt = parseRtp(msg);
    if (!pkt || pkt.payloadType !== this.#audioPt || pkt.payload.length === 0) return;
    // node-datachannel hands each message over in a Buffer of its own (napi_create_buffer_copy),
    // so listeners may keep the payload view without copying it.
    const opus = pkt.payload;
    for (const fn of this.#audioFns) {
      try {
        fn(opus, pkt.sequence, pkt.timestamp);
      } catch (err) {
        this.#log.warn({ err, what: 'onAudio listener' }, 'listener threw');
      }
    }
  }

  #acceptSignal(raw: SignalPayload): void {
    if (this.#state === 'closed') return;
    const parsed = SignalPayload.safeParse(raw);
    if (!parsed.success) {
      this.#log.warn({ issue: parsed.error.issues[0]?.path.join('.') }, 'invalid signal ignored');
      return;
    }
    const p = parsed.data;
    if (p.linkId !== this.linkId) {
      this.#log.debug({ other: p.linkId }, 'signal for another link ignored');
      return;
    }
    const pc = this.#pc!;
    switch (p.kind) {
      case 'offer': {
        if (this.role !== 'answerer' || this.#remoteApplied) return this.#ignored(p.kind);
        const audio = audioOfOffer(p.sdp);
        const fp = fingerprintFromSdp(p.sdp);
        if (!audio || !fp) {
          this.#log.warn({ hasAudio: !!audio, hasFingerprint: !!fp }, 'offer without Opus audio or fingerprint ignored');
          return;
        }
        // Our own track with the offer's mid and payload type, before the offer is applied (FINDINGS).
        this.#addAudio(audio.mid, audio.pt);
        this.#applyRemote(pc, this.#candidates.sdp(p.sdp), 'offer', fp);
        return;
      }
      case 'answer': {
        if (this.role !== 'offerer' || this.#remoteApplied) return this.#ignored(p.kind);
        const fp = fingerprintFromSdp(p.sdp);
        if (!fp) {
          this.#log.warn('answer without fingerprint ignored');
          return;
        }
        this.#applyRemote(pc, this.#candidates.sdp(p.sdp), 'answer', fp);
        if (!this.#remoteApplied) return;
        const wait = this.#recipe.releaseCandidatesAfterAnswerMs;
        if (wait > 0) this.#fallbackTimer = setTimeout(() => this.#guard('candidateFallback', () => this.#releaseLocal()), wait);
        else this.#releaseLocal();
        return;
      }
      case 'candidate': {
        if (!this.#candidates.allows(p.candidate)) return;
        if (!this.#remoteApplied) {
          if (this.#pendingRemote.length < MAX_PENDING_CANDIDATES) this.#pendingRemote.push(p);
          return;
        }
        this.#addRemoteCandidate(pc, p.candidate, p.mid);
        return;
      }
      case 'connect':
        return this.#ignored(p.kind); // the link manager's business, not a transport's
    }
  }

  #ignored(kind: string): void {
    this.#log.debug({ kind }, 'signal not expected now, ignored');
  }

  #applyRemote(pc: PeerConnection, sdp: string, type: 'offer' | 'answer', fp: string): void {
    try {
      pc.setRemoteDescription(sdp, type);
    } catch (err) {
      this.#fail(new SweepError('INVALID_MESSAGE', `link ${this.linkId}: ${type} rejected: ${String(err)}`, { cause: err }));
      return;
    }
    this.#remoteApplied = true;
    this.#remoteFingerprint = fp;
    for (const c of this.#pendingRemote.splice(0)) this.#addRemoteCandidate(pc, c.candidate, c.mid);
  }

  #addRemoteCandidate(pc: PeerConnection, candidate: string, mid: string): void {
    try {
      pc.addRemoteCandidate(candidate, mid);
    } catch (err) {
      this.#log.debug({ err }, 'remote candidate rejected');
    }
  }
}

export function createPeerTransport(opts: TransportOptions, log: Logger, tuning: PeerTransportTuning = {}): PeerTransport {
  return new NdcPeerTransport(opts, log, tuning);
}
