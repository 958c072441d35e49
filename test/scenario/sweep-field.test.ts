// Issue 12, "Survive the field": sweeps abandoned halfway and pushed calls a person must accept.
import t from 'tap';
import { labWorld, inCall, states } from '../helpers/world.ts';
import { pullSweep, waitForEvent, waitReadyForSweep, waitUntil } from '../../lab/story.ts';
import { SweepError } from '../../core/errors.ts';

const TABLET = { id: 'tablet', account: 'alice', kind: 'phone', label: 'Tablet', frequencyHz: 990 } as const;

void t.test('sweep abandoned after the update (newcomer killed): the far end gives the epoch back and the next sweep works (issue 12 item 7, S13)', async (t) => {
  const world = await labWorld(t, { sweepTimeoutMs: 800, endpoints: [{ ...TABLET, invites: 'auto' }] });
  await inCall(world, ['phone', 'tablet']);
  const intercom = world.get('intercom').endpoint;
  // The phone's app is killed the moment the far end accepted its update: no audio ever comes.
  const owner = {};
  intercom.bus.on(owner, 'sweep.step', (e) => {
    if (e.role === 'farEnd' && e.step === 'updateAccepted') void world.get('phone').endpoint.crash();
  });
  t.teardown(() => intercom.bus.removeOwner(owner));
  const reverted = waitForEvent(intercom, 'sweep.finished', (e) => e.role === 'farEnd', 5000);
  await world.get('phone').endpoint.calls.pull({ from: 'handset' }).catch(() => undefined);
  t.equal((await reverted).outcome, 'rolledBack', 'the far end hands the call back to the handset');
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'active', 3000, 'handset active again');
  t.equal(intercom.calls.snapshot()?.epoch, world.get('handset').endpoint.calls.snapshot()?.epoch, 'far end and holder agree on the epoch');
  t.equal(intercom.calls.snapshot()?.peer.endpointId, 'handset');

  // The next sweep, from the tablet, works.
  await waitReadyForSweep(world, 'handset', 'tablet');
  const { finished } = await pullSweep(world, 'tablet', 'handset');
  t.equal(finished.outcome, 'completed', `the next sweep completes (${finished.reason ?? 'ok'})`);
  t.same(states(world, ['intercom', 'tablet']), { intercom: 'active@tablet', tablet: 'active@intercom' });
});

void t.test('push to a handset that asks: it rings until accepted, then takes the call (issue 12 item 8, S10)', async (t) => {
  const world = await labWorld(t);
  await inCall(world);
  await pullSweep(world, 'phone', 'handset');
  await waitReadyForSweep(world, 'phone', 'handset');
  const handset = world.get('handset').endpoint;
  const invited = waitForEvent(handset, 'sweep.invited', () => true, 5000);
  const push = world.get('phone').endpoint.calls.push({ to: 'handset' });
  const inv = await invited;
  t.equal(inv.fromLabel, 'Smartphone (simulated)', 'the handset shows who sends the call');
  t.same(handset.calls.pendingInvitesSnapshot().map((i) => i.sweepId), [inv.sweepId], 'the invite rings on the handset');
  t.equal(world.get('phone').endpoint.calls.snapshot()?.state, 'active', 'the phone keeps talking while it rings');
  const taken = handset.calls.acceptInvite(); // the answer key: no sweep id needed
  await push;
  await taken;
  await waitUntil(() => world.get('phone').endpoint.calls.snapshot()?.state === 'ended', 3000, 'phone leg ended');
  t.same(states(world, ['intercom', 'handset']), { intercom: 'active@handset', handset: 'active@intercom' });
  t.same(handset.calls.pendingInvitesSnapshot(), [], 'nothing rings any more');
});

void t.test('push to a handset that asks and nobody accepts: the sender is told "not answered" and keeps talking (issue 12 item 8, S10)', async (t) => {
  const world = await labWorld(t, {});
  // A short invite timeout for the test: the handset's own config.
  await world.get('handset').endpoint.close();
  world.endpoints.delete('handset');
  await world.startEndpoint({ id: 'handset', account: 'alice', kind: 'deskphone', label: 'Desk handset', frequencyHz: 550, inviteTimeoutMs: 1000 });
  await inCall(world);
  await pullSweep(world, 'phone', 'handset');
  await waitReadyForSweep(world, 'phone', 'handset');
  const handset = world.get('handset').endpoint;
  const ended = waitForEvent(handset, 'sweep.inviteEnded', () => true, 5000);
  const err = (await world.get('phone').endpoint.calls.push({ to: 'handset' }).catch((e: unknown) => e)) as SweepError;
  t.ok(err instanceof SweepError);
  t.equal(err.code, 'REFUSED');
  t.equal(err.message, 'not answered on Desk handset');
  t.equal((await ended).reason, 'not answered', 'the handset stops ringing');
  t.same(states(world, ['intercom', 'phone']), { intercom: 'active@phone', phone: 'active@intercom' }, 'the phone still talks');
  const late = (await handset.calls.acceptInvite().catch((e: unknown) => e)) as SweepError;
  t.equal(late.code, 'NOT_FOUND', 'a late answer key finds nothing ringing');
});
