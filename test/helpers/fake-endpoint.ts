import { EndpointConfig } from '../../firmware-config/endpoint-config.ts';
import type { ObservedEndpoint } from '../../runtime/diagnostics/observed.ts';
import type { MediaStats } from '../../runtime/media/media-engine.ts';
import type { CallSnapshot, EndpointEvents } from '../../core/session/events.ts';
import { EventBus } from '../../core/bus.ts';

/** A stand-in endpoint for diagnostics tests: a real bus, a call and stats the test sets. */
export class FakeEndpoint implements ObservedEndpoint {
  readonly bus = new EventBus<EndpointEvents>();
  readonly config: EndpointConfig;
  call: CallSnapshot | null = null;
  readonly pushes: Array<{ to?: string }> = [];
  stats: MediaStats = { framesCaptured: 0, framesSent: 0, packetsSent: 0, framesReceived: 0, framesDecoded: 0, framesConcealed: 0, framesDropped: 0, playbackSwitches: 0 };
  readonly calls = {
    snapshot: () => this.call,
    /** H7, as the `dnd` command set it. */
    doNotDisturb: false,
    setDoNotDisturb: (on: boolean) => {
      this.calls.doNotDisturb = on;
    },
    push: async (opts: { to?: string }) => {
      this.pushes.push(opts);
      return { sweepId: 'sw1', to: opts.to ?? 'phone', startedAtMono: 1 };
    },
  };
  readonly links = {
    links: () => [{ peerId: 'handset', isClosed: false, malformedCount: 0, transport: { linkId: 'l1', role: 'offerer', isOpen: true, selectedPath: () => ({ local: 'host', remote: 'host', transport: 'UDP' }) } }],
  };
  readonly media = { stats: () => ({ ...this.stats }) };

  constructor(readonly id = 'intercom') {
    this.config = EndpointConfig.parse({
      endpoint: { id, kind: 'intercom', label: 'Front door' },
      access: { url: 'ws://127.0.0.1:1/access', serverPublicKey: 'A'.repeat(43), username: 'door', password: 'hunter2-secret' },
      stateDir: '/tmp/none',
    });
  }

  /** Simulated capture and playback progress, as an endpoint in a call would make. */
  tick(frames = 5): void {
    this.stats.framesCaptured += frames;
    this.stats.framesDecoded += frames;
  }
}
