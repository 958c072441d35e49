import t from 'tap';
import { waitForEvent, waitUntil } from '../../lab/story.ts';
import type { SweepError } from '../../core/errors.ts';
import { inCall, labWorld, sleep, states } from '../helpers/world.ts';
import { panelRigs } from '../helpers/panels.ts';

const ALL = ['intercom', 'handset', 'phone'];

void t.test('sweep button line on the serial wire moves the call to the phone; LEDs sweep then go off (issue 5)', async (t) => {
  const world = await labWorld(t);
  const rig = await panelRigs(t, world);
  await inCall(world);
  await rig.wire.waitFor(() => rig.wire.leds.get('call') === 'incall', 2000, 'call LED in call');
  const before = rig.wire.ledHistory.length;

  await rig.wire.press('sweep', 'down');
  await rig.wire.press('sweep', 'up');
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 3000, 'handset leg ended');
  t.same(states(world, ALL), { intercom: 'active@phone', handset: 'ended@intercom', phone: 'active@intercom' });
  await rig.wire.waitFor(() => rig.wire.leds.get('call') === 'off', 2000, 'call LED off');
  const callLed = rig.wire.ledHistory.slice(before).filter((h) => h.led === 'call').map((h) => h.pattern);
  t.same(callLed, ['sweeping', 'off'], 'the call LED went through the sweeping pattern and ended off');
  t.same(rig.handsetActions.map((a) => `${a.action}:${a.ok}`), ['sweep:true']);
  t.equal(rig.handset.panel.counters.badChecksum, 0);
});

void t.test('sweep button with the call on the phone takes it back to the handset; LED ends in call', async (t) => {
  const world = await labWorld(t);
  const rig = await panelRigs(t, world);
  await inCall(world);
  await rig.wire.press('sweep');
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 3000, 'handset leg ended');
  await waitUntil(() => world.get('handset').endpoint.calls.siblingCallsSnapshot().length > 0, 3000, 'handset knows the phone call');
  await rig.wire.waitFor(() => rig.wire.leds.get('call') === 'off', 2000, 'call LED off');
  const before = rig.wire.ledHistory.length;
  await rig.wire.press('sweep');
  await waitUntil(() => world.get('phone').endpoint.calls.snapshot()?.state === 'ended', 3000, 'phone leg ended');
  t.same(states(world, ALL), { intercom: 'active@handset', handset: 'active@intercom', phone: 'ended@intercom' });
  await rig.wire.waitFor(() => rig.wire.leds.get('call') === 'incall', 2000, 'call LED in call');
  const callLed = rig.wire.ledHistory.slice(before).filter((h) => h.led === 'call').map((h) => h.pattern);
  t.same(callLed, ['sweeping', 'incall']);
});

void t.test('door button of the holder with door rights pulses the intercom relay once per guard time (D2, D3)', async (t) => {
  const world = await labWorld(t);
  const rig = await panelRigs(t, world, { pulseMs: 300, guardMs: 800 });
  await inCall(world);
  const relay = rig.intercomPanel.relayPulses;

  await rig.wire.press('door');
  await waitUntil(() => rig.handsetActions.length === 1, 2000, 'door action settled');
  t.same(relay.map((p) => p.ms), [300], 'the holder with door rights opens the door');
  t.equal(rig.handsetActions[0]!.ok, true);

  await rig.wire.press('door');
  await waitUntil(() => rig.handsetActions.length === 2, 2000, 'second door action settled');
  t.match(rig.handsetActions[1], { ok: false, code: 'RATE_LIMITED', message: /guard time is 800 ms/ }, 'twice within the guard time: refused');
  t.equal(relay.length, 1, 'no second pulse within the guard time');
  await rig.wire.waitFor(() => rig.wire.leds.get('call') === 'error', 1000, 'error pattern after the refused action');

  await sleep(850);
  const sessionId = world.get('intercom').endpoint.calls.snapshot()!.sessionId;
  await rig.wire.press('sweep');
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 3000, 'handset leg ended');
  t.same(states(world, ALL), { intercom: 'active@phone', handset: 'ended@intercom', phone: 'active@intercom' });

  // The old holder asks anyway (its panel would not: it has no call any more).
  const link = await world.get('handset').endpoint.links.get('intercom');
  const err = (await link.rpc.request('door.open', { sessionId }).catch((e: unknown) => e)) as SweepError;
  t.match(err, { code: 'FORBIDDEN', message: /handset is not the holder.*phone is/ }, 'a non-holder is refused');
  t.equal(relay.length, 1, 'no pulse for a non-holder');

  // The new holder keeps the door rights through the sweep (S4).
  const phoneLink = await world.get('phone').endpoint.links.get('intercom');
  t.same(await phoneLink.rpc.request('door.open', { sessionId }), { pulseMs: 300 });
  t.equal(relay.length, 2, 'the new holder opens the door');
});

void t.test('door button in a call without door rights is refused and drives no relay (D2)', async (t) => {
  const world = await labWorld(t);
  const rig = await panelRigs(t, world);
  const handset = world.get('handset').endpoint;
  const ringing = waitForEvent(handset, 'call.state', (e) => e.call.state === 'ringing', 5000);
  await world.get('intercom').endpoint.calls.placeCall('handset', { doorRights: false });
  await ringing;
  await rig.wire.waitFor(() => rig.wire.leds.get('call') === 'ringing', 2000, 'call LED ringing');
  await rig.wire.press('answer');
  await waitUntil(() => handset.calls.snapshot()?.state === 'active', 3000, 'answered at the panel');
  await rig.wire.waitFor(() => rig.wire.leds.get('call') === 'incall', 2000, 'call LED in call');
  await rig.wire.press('door');
  await waitUntil(() => rig.handsetActions.length === 2, 2000, 'door action settled');
  t.match(rig.handsetActions[1], { action: 'door', ok: false, code: 'FORBIDDEN', message: /grants no door rights/ });
  t.same(rig.intercomPanel.relayPulses, []);
});

void t.test('intercom call button rings the handset; mute and hang up at the handset panel follow on the LEDs', async (t) => {
  const world = await labWorld(t);
  const rig = await panelRigs(t, world);
  const handset = world.get('handset').endpoint;
  await rig.intercomPanel.press('call');
  await waitUntil(() => handset.calls.snapshot()?.state === 'ringing', 3000, 'handset rings');
  await rig.wire.press('answer');
  await waitUntil(() => handset.calls.snapshot()?.state === 'active', 3000, 'answered');
  await rig.wire.press('mute');
  await rig.wire.waitFor(() => rig.wire.leds.get('mute') === 'on', 2000, 'mute LED on');
  t.equal(handset.calls.snapshot()?.muted, true);
  await rig.wire.press('hangup');
  await waitUntil(() => world.get('intercom').endpoint.calls.snapshot()?.state === 'ended', 3000, 'intercom leg ended');
  await rig.wire.waitFor(() => rig.wire.leds.get('call') === 'off' && rig.wire.leds.get('mute') === 'off', 2000, 'LEDs off');
  // The hang-up action settles when the intercom has answered its call.hangup, after the LEDs went off.
  await waitUntil(() => rig.handsetActions.length === 3, 3000, 'the hang-up action settled');
  t.same(rig.handsetActions.map((a) => `${a.action}:${a.ok}`), ['answer:true', 'mute:true', 'hangup:true']);
});

void t.test('call sent from the phone to the handset rings on its call LED and the answer key takes it (issue 12 item 8, S10)', async (t) => {
  const world = await labWorld(t);
  const rig = await panelRigs(t, world);
  await inCall(world);
  await world.get('phone').endpoint.calls.pull({ from: 'handset' });
  await waitUntil(() => world.get('handset').endpoint.calls.siblingCallsSnapshot().length > 0, 3000, 'handset knows the phone call');
  await rig.wire.waitFor(() => rig.wire.leds.get('call') === 'off', 2000, 'call LED off');
  const push = world.get('phone').endpoint.calls.push({ to: 'handset' });
  await rig.wire.waitFor(() => rig.wire.leds.get('call') === 'ringing', 3000, 'the call LED rings for the call sent here');
  await rig.wire.press('answer');
  await push;
  await waitUntil(() => world.get('phone').endpoint.calls.snapshot()?.state === 'ended', 3000, 'phone leg ended');
  t.same(states(world, ALL), { intercom: 'active@handset', handset: 'active@intercom', phone: 'ended@intercom' });
  await rig.wire.waitFor(() => rig.wire.leds.get('call') === 'incall', 2000, 'call LED in call');
  t.same(rig.handsetActions.map((a) => `${a.action}:${a.ok}`), ['answer:true']);
});
