import t from 'tap';
import { PanelEmulator } from '../../drivers/buttons/panel-emulator.ts';
import { SerialPanel } from '../../drivers/buttons/serial-panel.ts';
import { silentLogger } from '../../runtime/util/log.ts';
import { SocatPair } from '../helpers/socat.ts';
import { panelContract } from './panel.contract.ts';

// The real driver on a real (pseudo) serial port: socat links A (the Pi) and B (the panel, emulated).
panelContract(t, 'SerialPanel over socat', async () => {
  const pair = await SocatPair.create();
  let device: PanelEmulator | undefined = await PanelEmulator.open(pair.b);
  const panel = new SerialPanel({ path: pair.a, baudRate: 115_200, log: silentLogger(), reconnect: { initialMs: 20, maxMs: 200 } });
  return {
    panel,
    press: async (button, action) => {
      await device?.press(button, action);
    },
    leds: () => device?.leds ?? new Map(),
    relayPulses: () => device?.relayPulses.map((p) => p.ms) ?? [],
    unplug: async () => {
      await device?.close();
      device = undefined;
      await pair.stop();
    },
    replug: async () => {
      await pair.start();
      device = await PanelEmulator.open(pair.b);
    },
    close: async () => {
      await device?.close();
      await pair.close();
    },
  };
});
