// Issue 17, A13: STUN/TURN servers from the access server, links through a real coturn relay.
import t from 'tap';
import { createHmac } from 'node:crypto';
import { labWorld, inCall, sleep } from '../helpers/world.ts';
import { startLoopbackTurn } from '../helpers/turn.ts';
import { pullSweep, waitReadyForSweep } from '../../lab/story.ts';

void t.test('the access server hands every endpoint its STUN/TURN servers with TURN REST credentials, and links are made with them (A13)', async (t) => {
  const turn = await startLoopbackTurn(t);
  const world = await labWorld(t, { ice: { stun: ['stun:127.0.0.1:3478'], turn: [turn.udp, turn.tcp], secret: turn.secret } });
  const handset = world.get('handset').endpoint;

  const ice = handset.access.ice;
  t.ok(ice, 'the login answer carries the ICE servers');
  t.equal(ice?.policy, 'all', 'direct paths allowed unless the deployment forces the relay');
  t.same(ice?.servers[0], { urls: ['stun:127.0.0.1:3478'] }, 'STUN without credentials');
  const server = ice?.servers[1];
  t.same(server?.urls, [turn.udp, turn.tcp]);
  t.match(server?.username, /^\d+:alice$/, 'a TURN REST username: expiry and account');
  const expirySec = Number(server?.username?.split(':')[0]);
  t.ok(expirySec * 1000 > Date.now() + 3000_000 && expirySec * 1000 <= Date.now() + 3600_000 + 1000, 'valid for the default hour');
  t.equal(ice?.expiresAt, expirySec * 1000);
  t.equal(server?.credential, createHmac('sha1', turn.secret).update(server?.username ?? '').digest('base64'), 'the HMAC coturn checks');
  t.equal(world.get('intercom').endpoint.access.ice?.servers[1]?.username?.split(':')[1], 'door', 'each account gets its own username');

  // With TURN among the servers, local links still take the direct path and the sweep works.
  const path = (handset.links.current('phone')?.media)?.selectedPath?.();
  t.comment(`sibling link path: ${JSON.stringify(path)}`);
  t.ok(path && ['host', 'prflx', 'srflx', 'relay'].includes(path.local), 'the link tells which path ICE chose (sweep diag shows it)');
  await inCall(world);
  await waitReadyForSweep(world, 'handset', 'phone');
  const { finished } = await pullSweep(world, 'phone', 'handset');
  t.equal(finished.outcome, 'completed', `the sweep completes (${finished.reason ?? 'ok'})`);
  const since = performance.now() + 200;
  await sleep(800);
  t.ok(Math.abs((world.get('intercom').sink.frequencyHz(since) ?? 0) - world.get('phone').spec.frequencyHz) < 30, 'the intercom hears the phone');
});

void t.test('without ICE servers configured, the login carries none and links stay host to host (A13 default)', async (t) => {
  const world = await labWorld(t);
  const handset = world.get('handset').endpoint;
  t.equal(handset.access.ice, undefined);
  const path = (handset.links.current('phone')?.media)?.selectedPath?.();
  t.equal(path?.local, 'host');
});
