import t from 'tap';
import { EndpointConfig } from '../../firmware-config/endpoint-config.ts';
import { PanelConfig } from '../../firmware-config/panel-config.ts';
import { describeIssues } from '../../core/protocol/validate.ts';
import { checkDoorOpen } from '../../runtime/panel/door.ts';
import { callLed } from '../../runtime/panel/leds.ts';
import type { CallSnapshot } from '../../core/session/events.ts';

const call = (over: Partial<CallSnapshot> = {}): CallSnapshot => ({
  sessionId: 's1',
  state: 'active',
  direction: 'out',
  peer: { account: 'alice', endpointId: 'handset', label: 'Desk handset' },
  epoch: 0,
  startedAt: 0,
  doorRights: true,
  muted: false,
  onHold: false,
  ...over,
});
const handset = { account: 'alice', endpointId: 'handset' };

void t.test('checkDoorOpen from the holder of an active call with door rights allows it (D2)', async (t) => {
  t.doesNotThrow(() => checkDoorOpen(call(), { sessionId: 's1', from: handset }));
  t.doesNotThrow(() => checkDoorOpen(call({ state: 'sweeping' }), { sessionId: 's1', from: handset }));
});

void t.test('checkDoorOpen of anything else refuses it with the code D2 names', async (t) => {
  t.throws(() => checkDoorOpen(null, { sessionId: 's1', from: handset }), { code: 'NOT_FOUND' });
  t.throws(() => checkDoorOpen(call(), { sessionId: 'other', from: handset }), { code: 'NOT_FOUND', message: /no call other/ });
  t.throws(() => checkDoorOpen(call({ state: 'ended' }), { sessionId: 's1', from: handset }), { code: 'NOT_FOUND' });
  t.throws(() => checkDoorOpen(call({ state: 'ringing' }), { sessionId: 's1', from: handset }), { code: 'BAD_STATE', message: /ringing/ });
  t.throws(() => checkDoorOpen(call(), { sessionId: 's1', from: { account: 'alice', endpointId: 'phone' } }), { code: 'FORBIDDEN', message: /phone is not the holder.*handset is/ });
  t.throws(() => checkDoorOpen(call(), { sessionId: 's1', from: { account: 'mallory', endpointId: 'handset' } }), { code: 'FORBIDDEN' });
  t.throws(() => checkDoorOpen(call({ doorRights: false }), { sessionId: 's1', from: handset }), { code: 'FORBIDDEN', message: /no door rights/ });
});

void t.test('callLed of each call state and of a sweep or error in flight', async (t) => {
  const led = (c: CallSnapshot | null, sweeping = false, error = false) => callLed({ call: c, sweeping, error });
  t.equal(led(null), 'off');
  t.equal(led(call({ state: 'ringing' })), 'ringing');
  t.equal(led(call()), 'incall');
  t.equal(led(call({ state: 'sweeping' })), 'sweeping');
  t.equal(led(call(), true), 'sweeping', 'a push shows sweeping from the press on');
  t.equal(led(call({ state: 'ended' }), true), 'off', 'an ended call is off even if the sweep event is late');
  t.equal(led(call(), true, true), 'error');
});

void t.test('PanelConfig with defaults fills them in', async (t) => {
  const p = PanelConfig.parse({ device: { driver: 'serial', path: '/dev/ttyAMA0' }, buttons: [{ button: 'sweep', action: 'sweep' }] });
  t.match(p, {
    device: { driver: 'serial', path: '/dev/ttyAMA0', baudRate: 115_200, dataBits: 8, parity: 'none', stopBits: 1 },
    buttons: [{ button: 'sweep', on: 'down', action: 'sweep' }],
    leds: { call: 'call' },
    errorMs: 1500,
  });
  t.equal(p.relay, undefined, 'no relay unless configured');
});

void t.test('PanelConfig with unknown keys, bad values or double bindings is refused naming the path', async (t) => {
  const issues = (input: unknown) => {
    const r = PanelConfig.safeParse(input);
    return r.success ? 'accepted' : describeIssues(r.error);
  };
  t.match(issues({ device: { driver: 'serial', path: '/dev/x', baud: 9600 } }), /device: .*baud/);
  t.match(issues({ device: { driver: 'usb' } }), /device/);
  t.match(issues({ device: { driver: 'serial', path: '/dev/x', parity: 'sometimes' } }), /device.parity/);
  t.match(issues({ device: { driver: 'simulated' }, buttons: [{ button: 'Sweep!', action: 'sweep' }] }), /buttons.0.button: a button or LED name/);
  t.match(issues({ device: { driver: 'simulated' }, buttons: [{ button: 'x', action: 'call' }] }), /buttons.0: call button "x": give either "to" .* or "account" .*, not neither/);
  t.match(issues({ device: { driver: 'simulated' }, buttons: [{ button: 'x', action: 'call', to: 'handset', account: 'alice' }] }), /buttons.0: .*not both/);
  t.match(issues({ device: { driver: 'simulated' }, buttons: [{ button: 'x', action: 'call', account: 'Alice!' }] }), /buttons.0.account: an account name/);
  t.match(
    issues({ device: { driver: 'simulated' }, buttons: [{ button: 'x', action: 'sweep' }, { button: 'x', action: 'door' }] }),
    /buttons.1: button "x" on "down" is bound twice/,
  );
  t.match(issues({ device: { driver: 'simulated' }, relay: { pulseMs: 5 } }), /relay.pulseMs/);
});

void t.test('PanelConfig call button targets an endpoint id or a household account (H1)', async (t) => {
  const p = PanelConfig.parse({ device: { driver: 'simulated' }, buttons: [{ button: 'bell', action: 'call', account: 'alice', doorRights: true }, { button: 'bell2', action: 'call', to: 'handset' }] });
  t.match(p.buttons, [{ action: 'call', account: 'alice', doorRights: true }, { action: 'call', to: 'handset', doorRights: false }]);
});

void t.test('EndpointConfig with a panel key parses; without one it has none', async (t) => {
  const base = {
    endpoint: { id: 'handset', kind: 'deskphone', label: 'Desk' },
    access: { url: 'ws://127.0.0.1:1/access', serverPublicKey: 'A'.repeat(43), username: 'alice', password: 'x' },
    stateDir: '/tmp/x',
  };
  t.equal(EndpointConfig.parse(base).panel, undefined);
  t.equal(EndpointConfig.parse({ ...base, panel: { device: { driver: 'simulated' } } }).panel?.device.driver, 'simulated');
  t.notOk(EndpointConfig.safeParse({ ...base, panel: { device: { driver: 'simulated' }, colour: 'red' } }).success, 'unknown panel keys refused');
});
