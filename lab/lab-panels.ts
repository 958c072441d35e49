import { SimulatedPanel } from '../drivers/buttons/simulated-panel.ts';
import { PanelConfig } from '../firmware-config/panel-config.ts';
import type { World } from './world.ts';
import type { Logger } from '../platform/log.ts';
import { startPanel, type PanelController } from '../runtime/panel/panel-controller.ts';

export interface LabPanels {
  /** The handset's keys: sweep, door, answer, hangup, mute. */
  handset: SimulatedPanel;
  /** The intercom's bell (it rings alice's household, H1) and its door relay. */
  intercom: SimulatedPanel;
  close(): Promise<void>;
}

/** Simulated panels on the lab's handset and intercom; `print` hears every LED change and relay pulse. */
export async function startLabPanels(world: World, log: Logger, print: (line: string) => void): Promise<LabPanels> {
  const handset = new SimulatedPanel({ log });
  const intercom = new SimulatedPanel({ log });
  handset.onCommand = (c) => print('led' in c ? `  handset LED ${c.led}: ${c.pattern}` : `  handset relay ${c.relayMs} ms`);
  intercom.onCommand = (c) => print('led' in c ? `  intercom LED ${c.led}: ${c.pattern}` : `  intercom DOOR RELAY pulsed ${c.relayMs} ms`);
  const controllers: PanelController[] = [];
  try {
    controllers.push(
      await startPanel(
        world.get('handset').endpoint,
        PanelConfig.parse({
          device: { driver: 'simulated' },
          buttons: ['sweep', 'door', 'answer', 'hangup', 'mute'].map((b) => ({ button: b, action: b })),
          leds: { call: 'call', mute: 'mute' },
          pushTo: ['phone'],
        }),
        { log, panel: handset },
      ),
    );
    controllers.push(
      await startPanel(
        world.get('intercom').endpoint,
        PanelConfig.parse({
          device: { driver: 'simulated' },
          // H1: the bell rings every online endpoint of alice's flat: the handset and the phone(s).
          buttons: [{ button: 'call', action: 'call', account: 'alice', doorRights: true }],
          relay: { pulseMs: 500, guardMs: 3000 },
        }),
        { log, panel: intercom },
      ),
    );
  } catch (err) {
    await Promise.all(controllers.map((c) => c.close()));
    throw err;
  }
  return { handset, intercom, close: async () => void (await Promise.all(controllers.map((c) => c.close()))) };
}
