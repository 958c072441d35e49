import t from 'tap';
import { labWorld, states } from '../helpers/world.ts';
import { waitForEvent, waitUntil } from '../../lab/story.ts';
import { SweepError } from '../../core/errors.ts';

void t.test('placeCall nobody answers ends on both sides after the ring timeout (C1)', async (t) => {
  const world = await labWorld(t, { ringTimeoutMs: 1000 });
  await world.get('intercom').endpoint.calls.placeCall('handset');
  t.same(states(world, ['intercom', 'handset']), { intercom: 'ringing@handset', handset: 'ringing@intercom' });
  const ended = await waitForEvent(world.get('intercom').endpoint, 'call.state', (e) => e.call.state === 'ended', 3000);
  t.match(ended.reason ?? '', /no answer/);
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 2000, 'handset stops ringing');
});

void t.test('placeCall to a busy endpoint is refused BUSY and changes nothing (C2)', async (t) => {
  const world = await labWorld(t);
  await world.get('intercom').endpoint.calls.placeCall('handset');
  const err = (await world.get('phone').endpoint.calls.placeCall('handset').catch((e: unknown) => e)) as SweepError;
  t.equal(err.code, 'BUSY');
  t.same(states(world, ['intercom', 'handset', 'phone']), { intercom: 'ringing@handset', handset: 'ringing@intercom', phone: 'ended@handset' });
});

void t.test('reject on a ringing call ends it on both sides with the reason (C1)', async (t) => {
  const world = await labWorld(t);
  await world.get('intercom').endpoint.calls.placeCall('handset');
  const ended = waitForEvent(world.get('intercom').endpoint, 'call.state', (e) => e.call.state === 'ended', 3000);
  await world.get('handset').endpoint.calls.reject('not now');
  t.match((await ended).reason ?? '', /rejected: not now/);
});

void t.test('answer with no ringing call is refused BAD_STATE', async (t) => {
  const world = await labWorld(t);
  const err = (await world.get('handset').endpoint.calls.answer().catch((e: unknown) => e)) as SweepError;
  t.equal(err.code, 'BAD_STATE');
});
