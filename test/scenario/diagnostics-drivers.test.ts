import t, { type Test } from 'tap';
import { SimulatedPanel } from '../../drivers/buttons/simulated-panel.ts';
import { PanelConfig, type PanelConfigInput } from '../../firmware-config/panel-config.ts';
import { startPanel, type PanelController } from '../../runtime/panel/panel-controller.ts';
import { waitUntil } from '../../lab/story.ts';
import type { World } from '../../lab/world.ts';
import { silentLogger } from '../../platform/log.ts';
import { rig, type SuiteBroker } from '../helpers/diagnostics-suite.ts';
import { startAedes } from '../helpers/mqtt-brokers.ts';
import { labWorld, sleep } from '../helpers/world.ts';

const GUARD_MS = 3000;

async function aedes(t: Test): Promise<SuiteBroker> {
  const b = await startAedes(t);
  return { name: 'aedes', protocolVersion: 4, device: () => ({ url: b.url }), operator: () => ({ url: b.url, protocolVersion: 4 }) };
}

/** The lab intercom with a simulated panel (with or without its door relay). */
async function intercomWithPanel(t: Test, world: World, relay: boolean): Promise<{ panel: SimulatedPanel; controller: PanelController }> {
  const panel = new SimulatedPanel({ log: silentLogger() });
  const config: PanelConfigInput = {
    device: { driver: 'simulated' },
    buttons: [{ button: 'call', action: 'call', to: 'handset', doorRights: true }],
    ...(relay ? { relay: { pulseMs: 500, guardMs: GUARD_MS } } : {}),
  };
  const controller = await startPanel(world.get('intercom').endpoint, PanelConfig.parse(config), { log: silentLogger(), panel });
  t.teardown(() => controller.close());
  return { panel, controller };
}

void t.test('a simulated panel unplug publishes event/driver.error on aedes; replug publishes driver.recovered (Q15)', async (t) => {
  const world = await labWorld(t);
  const { panel } = await intercomWithPanel(t, world, true);
  const r = await rig(t, await aedes(t), { endpoint: world.get('intercom').endpoint });
  panel.unplug();
  const err = await r.seen.next((m) => m.topic === 'sweep/intercom/event/driver.error', 5000, 'driver.error');
  t.match(err.json(), { type: 'driver.error', data: { driver: 'panel.simulated', state: 'disconnected', message: /went away/, counters: { disconnects: 1, reconnects: 0 } } });
  panel.replug();
  const back = await r.seen.next((m) => m.topic === 'sweep/intercom/event/driver.recovered', 5000, 'driver.recovered');
  t.match(back.json(), { data: { driver: 'panel.simulated', state: 'recovered', counters: { disconnects: 1, reconnects: 1 } } });
  t.ok((back.json().seq as number) > (err.json().seq as number), 'in order');
});

void t.test('Home Assistant door button disabled (the default): no button config, presses are not listened to (Q16)', async (t) => {
  const world = await labWorld(t);
  const { panel, controller } = await intercomWithPanel(t, world, true);
  const r = await rig(t, await aedes(t), { endpoint: world.get('intercom').endpoint, config: { homeAssistant: { enabled: true } }, deps: { door: controller.door! } });
  await r.op.subscribe(['homeassistant/#']);
  await r.seen.next((m) => m.topic === 'homeassistant/sensor/intercom/call_state/config', 5000, 'sensor discovery');
  await r.op.client.publishAsync('sweep/intercom/ha/door', 'PRESS', { qos: 1 });
  await sleep(300);
  t.notOk(
    r.seen.seen.some((m) => m.topic.startsWith('homeassistant/button/') && m.payload.length > 0),
    'no door button offered',
  );
  t.equal(panel.relayPulses.length, 0, 'the relay did not pulse');
  t.notOk(r.seen.seen.some((m) => m.topic.startsWith('sweep/intercom/event/door.')), 'no door event');
});

void t.test('Home Assistant door button enabled on an intercom with a relay: discovery, one pulse, the guard time holds (Q16, D3)', async (t) => {
  const world = await labWorld(t);
  const { panel, controller } = await intercomWithPanel(t, world, true);
  const r = await rig(t, await aedes(t), {
    endpoint: world.get('intercom').endpoint,
    config: { homeAssistant: { enabled: true, doorButton: true } },
    deps: { door: controller.door! },
  });
  await r.op.subscribe(['homeassistant/#']);
  const cfg = await r.seen.next((m) => m.topic === 'homeassistant/button/intercom/door/config' && m.payload.length > 0, 5000, 'button discovery');
  t.match(cfg.json(), { unique_id: 'sweep_intercom_door', command_topic: 'sweep/intercom/ha/door', payload_press: 'PRESS', availability_topic: 'sweep/intercom/state' });

  await r.op.client.publishAsync('sweep/intercom/ha/door', 'PRESS', { qos: 1 });
  const opened = await r.seen.next((m) => m.topic === 'sweep/intercom/event/door.opened', 5000, 'door.opened');
  t.match(opened.json(), { data: { by: 'homeAssistant', ok: true } });
  await waitUntil(() => panel.relayPulses.length === 1, 2000, 'relay pulsed');
  t.equal(panel.relayPulses[0]?.ms, 500);

  await r.op.client.publishAsync('sweep/intercom/ha/door', 'PRESS', { qos: 1 });
  const refused = await r.seen.next((m) => m.topic === 'sweep/intercom/event/door.refused', 5000, 'door.refused');
  t.match(refused.json(), { data: { by: 'homeAssistant', ok: false, code: 'RATE_LIMITED', message: /guard time/ } });
  await sleep(100);
  t.equal(panel.relayPulses.length, 1, 'a second press within the guard time does not pulse');
});

void t.test('Home Assistant door button enabled without a panel relay: no button offered; a press is refused with an event (Q16)', async (t) => {
  const world = await labWorld(t);
  const r = await rig(t, await aedes(t), { endpoint: world.get('intercom').endpoint, config: { homeAssistant: { enabled: true, doorButton: true } } });
  await r.op.subscribe(['homeassistant/#']);
  await r.seen.next((m) => m.topic === 'homeassistant/sensor/intercom/call_state/config', 5000, 'sensor discovery');
  await r.op.client.publishAsync('sweep/intercom/ha/door', 'PRESS', { qos: 1 });
  const refused = await r.seen.next((m) => m.topic === 'sweep/intercom/event/door.refused', 5000, 'door.refused');
  t.match(refused.json(), { data: { by: 'homeAssistant', code: 'NOT_FOUND', message: /no panel relay/ } });
  t.notOk(
    r.seen.seen.some((m) => m.topic.startsWith('homeassistant/button/') && m.payload.length > 0),
    'no door button offered',
  );
  t.ok(r.ring.lines().some((l) => l.includes('door button press refused')), 'logged');
});
