import { join } from 'node:path';
import { z } from 'zod';
import type { EventBus } from '../../core/bus.ts';
import type { EndpointEvents } from '../../core/session/events.ts';
import type { Logger } from '../../platform/log.ts';
import { StateFile } from './state-file.ts';

const Kept = z.strictObject({ on: z.boolean() });

/**
 * H7: do not disturb set by a command (stdio `dnd`, the MQTT command) outlives a restart, so a
 * resident who silenced the handset for the night is not woken by a reboot. The config's
 * `calls.doNotDisturb` applies until a command sets it.
 */
export class KeptDoNotDisturb {
  private readonly file: StateFile<z.infer<typeof Kept>>;
  /** What the endpoint starts with: the kept value, else the config's. */
  readonly initial: boolean;

  constructor(
    private readonly bus: EventBus<EndpointEvents>,
    stateDir: string,
    configured: boolean,
    log: Logger,
  ) {
    this.file = new StateFile(join(stateDir, 'do-not-disturb.json'), Kept, log);
    this.initial = this.file.read()?.on ?? configured;
    bus.on(this, 'dnd.changed', (e) => this.file.write({ on: e.on }));
  }

  close(): void {
    this.file.close();
    this.bus.removeOwner(this);
  }
}
