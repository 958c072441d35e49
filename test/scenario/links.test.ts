import t from 'tap';
import { labWorld, inCall, sleep } from '../helpers/world.ts';
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
