import t from 'tap';
import { labWorld, inCall, sleep, states } from '../helpers/world.ts';
import { waitUntil } from '../../lab/story.ts';
import type { World } from '../../lab/world.ts';

const peers = (world: World, id: string) => world.get(id).endpoint.links.links().map((l) => l.peerId).sort();

void t.test('links are made ahead of need only where a sweep can happen, and idle ones close (L3)', async (t) => {
  const residents = ['bob', 'carol', 'dave'];
  const world = await labWorld(t, {
    idleCloseMs: 1000,
    accounts: residents.map((name) => ({ name, displayName: name })),
    buddies: residents.map((name) => [name, 'door'] as [string, string]),
    endpoints: residents.map((name, i) => ({ id: `${name}-desk`, account: name, kind: 'deskphone' as const, label: `${name}'s desk`, frequencyHz: 1300 + 100 * i })),
  });
  await sleep(300);
  t.same(peers(world, 'intercom'), [], 'an idle intercom holds no links to its residents');
  t.same(peers(world, 'handset'), ['phone'], 'same-account endpoints are linked ahead of need');
  t.same(peers(world, 'bob-desk'), []);

  await inCall(world);
  t.same(peers(world, 'intercom'), ['handset', 'phone'], 'in a call: the far end links the holder, and the holder’s sibling');
  t.same(peers(world, 'phone'), ['handset', 'intercom']);
  t.same(peers(world, 'carol-desk'), [], 'other residents stay unlinked');

  await world.get('intercom').endpoint.calls.hangup();
  await waitUntil(() => peers(world, 'intercom').length === 0, 5000, 'intercom links closed when idle');
  await waitUntil(() => peers(world, 'handset').join() === 'phone', 5000, 'handset keeps only its sibling link');
  t.same(peers(world, 'handset'), ['phone'], 'the sibling link stays');
});

void t.test('a link that dies is rebuilt for same-account endpoints (L4)', async (t) => {
  const world = await labWorld(t);
  world.get('handset').endpoint.links.current('phone')!.close('test breaks it');
  await waitUntil(() => world.get('handset').endpoint.links.current('phone') !== undefined && world.get('phone').endpoint.links.current('handset') !== undefined, 8000, 'link rebuilt');
  t.pass('handset and phone are linked again');
});

void t.test('the link a call runs on dies with both ends alive: it is rebuilt at once and the call carries on over it (L4, L6)', async (t) => {
  const world = await labWorld(t);
  await inCall(world);
  const handset = world.get('handset').endpoint;
  const intercom = world.get('intercom').endpoint;
  const old = handset.links.current('intercom')!;
  old.close('test breaks the call link');
  const brokenAt = performance.now();
  await waitUntil(() => {
    const l = handset.links.current('intercom');
    return l !== undefined && l !== old;
  }, 5000, 'the call link is rebuilt');
  t.ok(performance.now() - brokenAt < 4000, `rebuilt ${Math.round(performance.now() - brokenAt)} ms after it broke, well inside the C5 grace`);
  const since = performance.now() + 300;
  await sleep(1200);
  t.same(states(world, ['intercom', 'handset']), { intercom: 'active@handset', handset: 'active@intercom' }, 'the call carries on');
  t.ok(Math.abs((world.get('intercom').sink.frequencyHz(since) ?? 0) - 550) < 30, 'the intercom hears the handset over the new link');
  t.ok(Math.abs((world.get('handset').sink.frequencyHz(since) ?? 0) - 330) < 30, 'the handset hears the intercom over the new link');
  t.equal(intercom.calls.snapshot()?.epoch, 0, 'the same call, not a new one');
});
