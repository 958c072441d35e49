import type { KeyObject } from 'node:crypto';
import { LinkSet, peerLinkBasics, type LinkSetOptions, type Signaller } from '../../core/link/link-set.ts';
import type { Logger } from '../../platform/log.ts';
import type { IceConfig } from '../../core/protocol/ice.ts';
import { RelayRenewal } from '../../core/link/relay-renewal.ts';
import { Link } from './link.ts';
import type { PeerTransport, TransportOptions } from './transport.ts';

export type { Signaller };

export interface LinkManagerOptions extends Omit<LinkSetOptions<Link>, 'makeLink' | 'selfIsBrowser'> {
  createTransport: (opts: TransportOptions, log: Logger) => PeerTransport;
  bindAddress: string;
  dtlsCertFile: string;
  dtlsKeyFile: string;
  certificate: () => string;
  /** This process's instance id, new at every start (L6). */
  instance: string;
  serverPublicKey: KeyObject;
  log: Logger;
  /** L5 knobs (tests). */
  liveness?: { intervalMs: number; deadAfterMs: number };
  /** A13: the ICE servers to make the next link with (fresh TURN credentials for each). */
  ice?: () => IceConfig | undefined;
}

/** The device's links (L1–L4, core/link/link-set.ts), each a node-datachannel transport bound to the configured address. */
export class LinkManager extends LinkSet<Link> {
  readonly #renewal: RelayRenewal<Link>;

  constructor(opts: LinkManagerOptions) {
    super({
      ...opts,
      makeLink: (spec) => {
        const log = spec.log;
        const transport = opts.createTransport(
          {
            linkId: spec.linkId,
            role: spec.role,
            bindAddress: opts.bindAddress,
            dtlsCertFile: opts.dtlsCertFile,
            dtlsKeyFile: opts.dtlsKeyFile,
            openTimeoutMs: spec.setupTimeoutMs,
            sendSignal: spec.sendSignal,
            ...iceOption(opts.ice?.()),
          },
          log,
        );
        return new Link({
          ...peerLinkBasics(spec),
          transport,
          certificate: opts.certificate,
          instance: opts.instance,
          serverPublicKey: opts.serverPublicKey,
          clock: opts.clock,
          ...(opts.liveness ? { liveness: opts.liveness } : {}),
        });
      },
    });
    this.#renewal = new RelayRenewal<Link>({
      links: () => this.links(),
      relayed: (link) => link.transport.selectedPath?.()?.local === 'relay',
      inUse: (peerId) => opts.inUse?.(peerId) ?? false,
      clock: opts.clock,
      log: opts.log,
    });
  }

  /** L9: fresh TURN credentials arrived; relayed links are remade with them. */
  renewRelayed(): Promise<void> {
    return this.#renewal.renew();
  }

  override close(): void {
    this.#renewal.close();
    super.close();
  }
}

function iceOption(ice: IceConfig | undefined): { ice?: IceConfig } {
  return ice ? { ice } : {};
}
