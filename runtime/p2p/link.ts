import type { KeyObject } from 'node:crypto';
import { PeerLink, type PeerLinkOptions } from '../../core/link/peer-link.ts';
import { verifyCertificate } from '../../platform/certificate.ts';
import type { PeerTransport } from './transport.ts';

export interface LinkOptions extends Omit<PeerLinkOptions<PeerTransport>, 'verifyCertificate'> {
  /** The access server's key: peers' certificates are checked against it (P3). */
  serverPublicKey: KeyObject;
}

/** The device's link: core's PeerLink (P2, P3, L5) over a node-datachannel transport, certificates checked with node:crypto. */
export class Link extends PeerLink<PeerTransport> {
  constructor(opts: LinkOptions) {
    const { serverPublicKey, ...rest } = opts;
    super({ ...rest, verifyCertificate: (token) => verifyCertificate(token, serverPublicKey, opts.clock.now()) });
  }
}
