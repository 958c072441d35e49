import t from 'tap';
import { callOf, isEvent, ProcessWorld } from '../../lab/process-world.ts';

void t.test('sweep endpoint stdio call with an account rings the household; the phone answers and the handset stops; stdio dnd skips the handset (H1, H2, H7)', async (t) => {
  const world = await ProcessWorld.start(['alice', 'door'], [['alice', 'door']]);
  t.teardown(() => world.close());
  const [intercom, handset, phone] = await Promise.all([
    world.endpoint({ id: 'intercom', kind: 'intercom', account: 'door', frequencyHz: 330, invites: 'ask' }),
    world.endpoint({ id: 'handset', kind: 'deskphone', account: 'alice', frequencyHz: 550, invites: 'ask' }),
    world.endpoint({ id: 'phone', kind: 'phone', account: 'alice', frequencyHz: 770, invites: 'auto' }),
  ]);
  t.teardown(() => Promise.all([intercom.close(), handset.close(), phone.close()]));
  await handset.waitFor(isEvent('link.state', (l) => l.peerId === 'phone' && l.up === true), 15_000, 'handset↔phone link');

  await t.rejects(intercom.command({ cmd: 'call', to: 'handset', account: 'alice' }), /either "to" .* or "account"/, 'both targets at once are refused');
  await intercom.command({ cmd: 'call', account: 'alice', doorRights: true });
  await Promise.all([handset, phone].map((e) => e.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ringing'), 10_000, 'ringing')));
  await phone.command({ cmd: 'answer' });
  const stopped = await handset.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ended'), 5000, 'handset stops ringing');
  t.equal((stopped as { reason?: string }).reason, 'answered on phone', 'the handset shows where it was answered');
  t.equal(callOf(await intercom.command({ cmd: 'state' }))?.peer.endpointId, 'phone');
  // H11: the intercom tells the fan-out and the cancel on stdout.
  const cancelled = await intercom.waitFor(isEvent('ring.fork', (l) => l.endpointId === 'handset' && l.state === 'cancelled'), 5000, 'handset fork cancelled');
  t.equal(cancelled.reason, 'answered');

  // H7: stdio dnd on the handset: the next ring skips it.
  await intercom.command({ cmd: 'hangup' });
  t.same(await handset.command({ cmd: 'dnd', on: true }), { doNotDisturb: true });
  const mark = intercom.mark();
  await intercom.command({ cmd: 'call', account: 'alice' });
  const skipped = await intercom.waitFor(isEvent('ring.fork', (l) => l.endpointId === 'handset' && l.state === 'dnd'), 10_000, 'handset skipped', mark);
  t.match(skipped.reason, /DO_NOT_DISTURB/, 'the handset answered the invite do not disturb');
  await intercom.waitFor(isEvent('ring.fork', (l) => l.endpointId === 'phone' && l.state === 'ringing'), 10_000, 'the phone rings', mark);
});
