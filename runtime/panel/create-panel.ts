import type { PanelDeviceConfig } from '../../firmware-config/panel-config.ts';
import type { Panel } from '../../drivers/buttons/panel.ts';
import { SerialPanel } from '../../drivers/buttons/serial-panel.ts';
import { SimulatedPanel } from '../../drivers/buttons/simulated-panel.ts';
import type { Clock } from '../../core/clock.ts';
import type { Logger } from '../../platform/log.ts';

/** The panel driver named by the config (not opened). */
export function createPanel(device: PanelDeviceConfig, deps: { log: Logger; clock?: Clock }): Panel {
  const clock = deps.clock ? { clock: deps.clock } : {};
  switch (device.driver) {
    case 'serial':
      return new SerialPanel({
        path: device.path,
        baudRate: device.baudRate,
        dataBits: device.dataBits,
        parity: device.parity,
        stopBits: device.stopBits,
        reconnect: { initialMs: device.reconnectMinMs, maxMs: device.reconnectMaxMs },
        heartbeatMs: device.heartbeatMs,
        log: deps.log,
        ...clock,
      });
    case 'simulated':
      return new SimulatedPanel({ log: deps.log, ...clock });
  }
}
