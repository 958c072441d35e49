import type { IceConfig } from '../../core/protocol/ice.ts';
import type { SignalPayload } from '../../core/protocol/access.ts';

/**
 * One node-datachannel PeerConnection to one other endpoint: a reliable ordered data channel
 * `ctl` for JSON text, and one Opus audio track (send and receive) negotiated in the first offer.
 * Lifecycle (mediasoup style): `opened` settles once — resolves when `ctl` is open, rejects
 * when set-up fails or times out (failing to start); `onClosed` fires once if the link dies
 * later or is closed. `close()` is idempotent and removes every native callback.
 * No callback of this object ever lets an exception escape into node-datachannel.
 */
export interface PeerTransport {
  readonly linkId: string;
  readonly role: 'offerer' | 'answerer';
  /** Resolves when `ctl` is open; rejects with SweepError TIMEOUT/CLOSED. */
  readonly opened: Promise<void>;
  /** The DTLS fingerprint in the peer's SDP ("sha-256 AB:…"), known once the remote description is applied. */
  remoteFingerprint(): string | undefined;
  /**
   * A13: the candidate pair ICE chose (host, srflx, prflx or relay on each side, and the local
   * transport), once connected; undefined before, or where the transport cannot tell.
   */
  selectedPath?(): LinkPath | undefined;
  /** Feeds a signalling payload from the peer (offer/answer/candidate for this linkId). */
  acceptSignal(payload: SignalPayload): void;
  /** Sends one text message on `ctl`. Throws SweepError CLOSED if the channel is not open. */
  sendText(text: string): void;
  onText(fn: (text: string) => void): void;
  /**
   * Sends one encoded Opus frame (20 ms) on the audio track; dropped silently while not open. The
   * frame is copied before this returns: the caller may reuse its buffer at once.
   */
  sendAudio(opusFrame: Uint8Array): void;
  /** Each received Opus payload, with its RTP sequence number and timestamp. */
  onAudio(fn: (opus: Uint8Array, seq: number, timestamp: number) => void): void;
  onClosed(fn: (reason: string) => void): void;
  readonly isOpen: boolean;
  close(reason?: string): void;
}

export interface TransportOptions {
  linkId: string;
  role: 'offerer' | 'answerer';
  /** Local address to bind ICE to; 127.0.0.1 in tests and the lab. */
  bindAddress: string;
  /** The endpoint's long-lived DTLS certificate (docs/protocol.md P3). */
  dtlsCertFile: string;
  dtlsKeyFile: string;
  /** Sends a signalling payload to the peer through the rendezvous relay. */
  sendSignal: (payload: SignalPayload) => void;
  /** Set-up deadline, ms. */
  openTimeoutMs?: number;
  /** A13: STUN/TURN servers and the relay policy from the access server; none: the local network only. */
  ice?: IceConfig;
}

/** A13: how a link reaches its peer (`sweep diag` shows it). */
export interface LinkPath {
  local: string;
  remote: string;
  /** udp or tcp, as libjuice reports the local candidate's transport. */
  transport: string;
}
