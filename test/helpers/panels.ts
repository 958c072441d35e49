import type { Test } from 'tap';
import { PanelEmulator } from '../../drivers/buttons/panel-emulator.ts';
import { SimulatedPanel } from '../../drivers/buttons/simulated-panel.ts';
import { PanelConfig, type PanelConfigInput } from '../../firmware-config/panel-config.ts';
import type { World } from '../../lab/world.ts';
import { startPanel, type PanelActionEvent, type PanelController } from '../../runtime/panel/panel-controller.ts';
import { silentLogger } from '../../platform/log.ts';
import { SocatPair } from './socat.ts';

export interface PanelRigs {
  pair: SocatPair;
  /** The handset's microcontroller, on the far end of the socat pair. */
  wire: PanelEmulator;
  handset: PanelController;
  /** The intercom's panel with the door relay (simulated: it records the pulses). */
  intercom: PanelController;
  intercomPanel: SimulatedPanel;
  /** Every button action the handset's panel ran, in order. */
  handsetActions: PanelActionEvent[];
}

export const HANDSET_PANEL: Omit<PanelConfigInput, 'device'> = {
  buttons: [
    { button: 'sweep', action: 'sweep' },
    { button: 'door', action: 'door' },
    { button: 'answer', action: 'answer' },
    { button: 'hangup', action: 'hangup' },
    { button: 'mute', action: 'mute' },
  ],
  leds: { call: 'call', mute: 'mute' },
  pushTo: ['phone'],
};

/**
 * The handset's serial panel (socat pair, serial driver from config) and the intercom's simulated
 * panel with its relay; all torn down when the test ends.
 */
export async function panelRigs(t: Test, world: World, relay = { pulseMs: 300, guardMs: 800 }): Promise<PanelRigs> {
  const pair = await SocatPair.create();
  t.teardown(() => pair.close());
  const wire = await PanelEmulator.open(pair.b);
  t.teardown(() => wire.close());
  const log = silentLogger();
  const handset = await startPanel(
    world.get('handset').endpoint,
    PanelConfig.parse({ ...HANDSET_PANEL, device: { driver: 'serial', path: pair.a, reconnectMinMs: 20, reconnectMaxMs: 200 } }),
    { log },
  );
  t.teardown(() => handset.close());
  const intercomPanel = new SimulatedPanel();
  const intercom = await startPanel(
    world.get('intercom').endpoint,
    PanelConfig.parse({ device: { driver: 'simulated' }, buttons: [{ button: 'call', action: 'call', to: 'handset', doorRights: true }], relay }),
    { log, panel: intercomPanel },
  );
  t.teardown(() => intercom.close());
  const handsetActions: PanelActionEvent[] = [];
  handset.onAction((e) => handsetActions.push(e));
  return { pair, wire, handset, intercom, intercomPanel, handsetActions };
}
