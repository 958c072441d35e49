import type { SignalPayload } from '../protocol/access.ts';
import type { Logger } from '../log.ts';

export interface Signaller {
  signal(to: string, payload: SignalPayload): Promise<void>;
}

/** What the set needs to make one link: its id, which side offers, and where its signals go. */
export interface NewLink {
  peerId: string;
  linkId: string;
  role: 'offerer' | 'answerer';
  /** The account the relay said the peer is of, when it said (P3). */
  account: string | undefined;
  sendSignal: (payload: SignalPayload) => void;
  /** Set-up plus hello deadline. */
  setupTimeoutMs: number;
  log: Logger;
}

/** What a NewLink fixes of its PeerLink: who the peer must be (P3), the set-up deadline, the log. */
export function peerLinkBasics(spec: NewLink): { expectedPeer: string; expectedAccount?: string; openTimeoutMs: number; log: Logger } {
  return { expectedPeer: spec.peerId, ...(spec.account !== undefined ? { expectedAccount: spec.account } : {}), openTimeoutMs: spec.setupTimeoutMs, log: spec.log };
}
