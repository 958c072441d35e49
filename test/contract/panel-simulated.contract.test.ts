import t from 'tap';
import { SimulatedPanel } from '../../drivers/buttons/simulated-panel.ts';
import { panelContract } from './panel.contract.ts';

panelContract(t, 'SimulatedPanel', async () => {
  const panel = new SimulatedPanel();
  return {
    panel,
    press: (button, action) => panel.press(button, action),
    leds: () => panel.leds,
    relayPulses: () => panel.relayPulses.map((p) => p.ms),
    unplug: async () => panel.unplug(),
    replug: async () => panel.replug(),
    close: async () => undefined,
  };
});
