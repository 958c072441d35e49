import t, { type Test } from 'tap';
import { PanelEmulator } from '../../drivers/buttons/panel-emulator.ts';
import { SerialPanel } from '../../drivers/buttons/serial-panel.ts';
import type { LedPattern } from '../../drivers/buttons/line-protocol.ts';
import { silentLogger } from '../../platform/log.ts';
import { SocatPair } from '../helpers/socat.ts';
import { sleep } from '../helpers/world.ts';
import { waitUntil } from '../../lab/story.ts';
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

void t.test('SerialPanel open of a missing path rejects OFFLINE naming the path, and close still resolves', async (t) => {
  const panel = new SerialPanel({ path: '/nonexistent/ttyPANEL', baudRate: 9600, log: silentLogger() });
  await t.rejects(panel.open(), { name: 'SweepError', code: 'OFFLINE', message: /\/nonexistent\/ttyPANEL at 9600 baud/ });
  await t.resolves(panel.close());
});

/** A connected panel showing `pattern` on its call LED, then the cable pulled: socat stopped, the panel disconnected. */
async function unplugged(t: Test, pattern: LedPattern, maxMs: number): Promise<{ pair: SocatPair; panel: SerialPanel }> {
  const pair = await SocatPair.create();
  t.teardown(() => pair.close());
  const device = await PanelEmulator.open(pair.b);
  t.teardown(() => device.close());
  const panel = new SerialPanel({ path: pair.a, baudRate: 115_200, log: silentLogger(), reconnect: { initialMs: 20, maxMs } });
  t.teardown(() => panel.close());
  await panel.open();
  await panel.setLed('call', pattern);
  await device.waitFor(() => device.leds.get('call') === pattern, 2000, 'LED');
  await device.close();
  await pair.stop();
  await waitUntil(() => panel.state === 'disconnected', 3000, 'disconnected');
  return { pair, panel };
}

void t.test('SerialPanel with the port gone for a while keeps retrying with back-off and reconnects when it is back', async (t) => {
  const { pair, panel } = await unplugged(t, 'incall', 100);
  await sleep(600); // several failed reopen attempts (20, 40, 80, 100, 100… ms)
  t.equal(panel.state, 'disconnected');
  await pair.start();
  const device = await PanelEmulator.open(pair.b);
  t.teardown(() => device.close());
  await waitUntil(() => panel.state === 'connected', 3000, 'reconnected');
  // The new emulator starts with no LEDs, so seeing `incall` proves the replay (H2). The host's own
  // HELLO is not asserted: when the panel reconnects before the emulator opens its end, the tty
  // flushes it on open, and the emulator's hello then triggers the replay instead.
  await device.waitFor(() => device.leds.get('call') === 'incall', 2000, 'LED replay');
  const got: string[] = [];
  panel.onButton((e) => got.push(`${e.button}:${e.action}`));
  await device.press('sweep', 'down');
  await waitUntil(() => got.length === 1, 2000, 'button after reconnection');
  t.same(got, ['sweep:down']);
  t.match(panel.counters, { disconnects: 1, reconnects: 1 });
});

void t.test('SerialPanel reopened before the panel starts: the host HELLO is lost, the panel hello still brings the LEDs back (H2)', async (t) => {
  const { pair, panel } = await unplugged(t, 'ringing', 50);
  await pair.start();
  // The host reopens its end first and sends HELLO and the LEDs into a port nobody reads yet.
  await waitUntil(() => panel.state === 'connected', 3000, 'reconnected');
  await sleep(50);
  const device = await PanelEmulator.open(pair.b);
  t.teardown(() => device.close());
  await device.waitFor(() => device.leds.get('call') === 'ringing', 2000, 'LED replay after the panel hello');
  t.notOk(device.received.some((m) => m.type === 'hello'), 'the host HELLO written before the panel opened is gone (flushed on open)');
  t.equal(device.leds.get('call'), 'ringing');
});
