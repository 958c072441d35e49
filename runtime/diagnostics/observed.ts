import type { EndpointConfig } from '../../firmware-config/endpoint-config.ts';
import type { MediaStats } from '../media/media-engine.ts';
import type { CallSnapshot, EndpointEvents } from '../../core/session/events.ts';
import type { EventBus } from '../../core/bus.ts';

/**
 * What diagnostics reads from and asks of an endpoint. `Endpoint` has all of it; unit tests pass
 * a small stand-in.
 */
export interface ObservedEndpoint {
  readonly id: string;
  readonly config: EndpointConfig;
  readonly bus: EventBus<EndpointEvents>;
  readonly calls: {
    snapshot(): CallSnapshot | null;
    push(opts: { to?: string }): Promise<{ sweepId: string; to: string; startedAtMono: number }>;
    /** H7. */
    readonly doNotDisturb: boolean;
    setDoNotDisturb(on: boolean): void;
  };
  readonly links: {
    links(): Array<{ peerId: string; isClosed: boolean; malformedCount: number; transport: { linkId: string; role: string; isOpen: boolean; selectedPath?(): { local: string; remote: string; transport: string } | undefined } }>;
  };
  readonly media: { stats(): MediaStats };
}
