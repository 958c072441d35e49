import type { CertificatePayload } from '../protocol/certificate.ts';
import type { GrantPayload, PeerCatalogue } from '../protocol/peer.ts';
import type { RpcChannel } from '../protocol/rpc.ts';

/**
 * What the protocol engine needs from the endpoint it runs in, as ports: the device fills them
 * with node-datachannel links, its media engine and node:crypto; the phone page with WebRTC and
 * WebCrypto. The engine itself imports nothing platform-specific.
 */

/** A link's media: a node-datachannel transport on the device, the link itself in the page. Opaque here. */
export type MediaHandle = object;

/** A verified link to one peer (docs/protocol.md P2–P4, L5–L7). */
export interface Link {
  readonly peerId: string;
  /** The peer's verified certificate; undefined until the hellos are through. */
  readonly peer: CertificatePayload | undefined;
  /** The peer's instance id from its hello (L6). */
  readonly peerInstance: string | undefined;
  /** The call the peer's new instance carries on (hello `resume`, L7). */
  readonly peerResume: string | undefined;
  readonly isClosed: boolean;
  readonly rpc: RpcChannel<PeerCatalogue>;
  readonly media: MediaHandle;
  onClosed(fn: (reason: string) => void): void;
  close(reason?: string): void;
}

/** The endpoint's links (L1–L4): one per peer, some kept ahead of need. */
export interface Links {
  /** A ready link to `peerId`, made on demand. */
  get(peerId: string): Promise<Link>;
  /** The ready link to `peerId`, if there is one now. */
  current(peerId: string): Link | undefined;
  links(): Link[];
  pin(peerId: string, reason: string): void;
  unpin(peerId: string, reason: string): void;
  unpinAll(reason: string): void;
  /** Marks the link as used now (idle close, L3). */
  touch(peerId: string): void;
  /** Called synchronously when a link object is made, before any peer message can arrive. */
  onLinkCreated(fn: (link: Link) => void): void;
  onLinkReady(fn: (link: Link) => void): void;
  /** For links that were ready when they closed. */
  onLinkClosed(fn: (peerId: string, reason: string, link: Link) => void): void;
}

/** Where audio goes and comes from (C4, S7). */
export interface Media {
  attach(m: MediaHandle): void;
  detach(m: MediaHandle): void;
  setSendTargets(ms: MediaHandle[]): void;
  setPlayback(m: MediaHandle | null): void;
  /** Fires once, at the next audio packet that arrives on `m`. */
  onFirstAudio(m: MediaHandle, fn: () => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Signatures (S4, S6): async, so node:crypto and WebCrypto both fit. */
export interface Crypto {
  /** Signs a grant with this endpoint's signing key (the token format of core/token.ts). */
  signGrant(payload: GrantPayload): Promise<string>;
  /** Verifies a grant with the holder's certified raw Ed25519 key; throws SweepError UNAUTHORIZED. */
  verifyGrant(token: string, signingKeyRaw: string): Promise<GrantPayload>;
  /** `bytes` random bytes as base64url (session, sweep and nonce ids). */
  randomId(bytes: number): string;
}
