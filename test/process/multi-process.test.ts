import t from 'tap';
import { callOf as callState, isEvent, ProcessWorld } from '../../lab/process-world.ts';

void t.test('access server and three endpoint processes run a push and a pull sweep', async (t) => {
  const world = await ProcessWorld.start(['alice', 'door'], [['alice', 'door']]);
  t.teardown(() => world.close());
  const endpoint = (id: string, kind: 'intercom' | 'deskphone' | 'phone', account: 'alice' | 'door', frequencyHz: number, invites: 'auto' | 'ask') =>
    world.endpoint({ id, kind, account, frequencyHz, invites });
  const [intercom, handset, phone] = await Promise.all([
    endpoint('intercom', 'intercom', 'door', 330, 'ask'),
    endpoint('handset', 'deskphone', 'alice', 550, 'ask'),
    endpoint('phone', 'phone', 'alice', 770, 'auto'),
  ]);
  t.teardown(() => Promise.all([intercom.close(), handset.close(), phone.close()]));

  await handset.waitFor(isEvent('link.state', (l) => l.peerId === 'phone' && l.up === true), 15_000, 'handset↔phone link');

  // The intercom rings the handset; the handset answers.
  await intercom.command({ cmd: 'call', to: 'handset', doorRights: true });
  await handset.waitFor(isEvent('call.state', (l) => callState(l)?.state === 'ringing'), 5000, 'ringing');
  await handset.command({ cmd: 'answer' });
  await phone.waitFor(isEvent('link.state', (l) => l.peerId === 'intercom' && l.up === true), 10_000, 'phone linked to the intercom ahead of need');

  // Push: the handset's sweep button sends the call to the phone.
  await handset.command({ cmd: 'push', to: 'phone' });
  const pushed = await phone.waitFor(isEvent('sweep.finished', (l) => l.role === 'newcomer'), 10_000, 'push finished');
  t.equal(pushed.outcome, 'completed');
  await handset.waitFor(isEvent('call.state', (l) => callState(l)?.state === 'ended'), 5000, 'handset leg ended');
  let s = await intercom.command({ cmd: 'state' });
  t.equal(callState(s)?.state, 'active');
  t.equal(callState(s)?.peer.endpointId, 'phone', 'the intercom talks to the phone');

  // Pull: the handset takes the call back.
  const played = await intercom.command({ cmd: 'audio' });
  const beforePull = phone.mark();
  await handset.waitFor(isEvent('sibling.call', (l) => l.endpointId === 'phone' && l.call !== null), 5000, 'handset knows the phone call');
  await handset.command({ cmd: 'pull', from: 'phone' });
  await phone.waitFor(isEvent('call.state', (l) => callState(l)?.state === 'ended'), 5000, 'phone leg ended', beforePull);
  s = await intercom.command({ cmd: 'state' });
  t.equal(callState(s)?.peer.endpointId, 'handset', 'the intercom talks to the handset again');
  // Measuring over stdio (bench/nat.ts): what the intercom played across the pull, ctl round trips.
  const since = await intercom.command({ cmd: 'audio', since: played.now });
  t.ok((since.frames as number) > 0 && (since.maxGapMs as number) > 0, `audio since a mark tells frames and the longest gap (${JSON.stringify(since)})`);
  t.ok((since.frames as number) < ((await intercom.command({ cmd: 'audio' })).frames as number), 'audio without since tells all the sink holds');
  const rtt = (await handset.command({ cmd: 'ping', peer: 'intercom', n: 3 })).rttMs as number[];
  t.ok(rtt.length === 3 && rtt.every((ms) => ms > 0), `ping times n ctl round trips (${rtt.map((ms) => ms.toFixed(2)).join(', ')} ms)`);
  await t.rejects(handset.command({ cmd: 'ping', peer: 'nobody' }), /no ready link to nobody/, 'ping without a link to the peer is refused');
  t.equal((callState(s) as unknown as { epoch: number }).epoch, 2);
  t.equal(callState(await handset.command({ cmd: 'state' }))?.state, 'active');
  t.equal(callState(await phone.command({ cmd: 'state' }))?.state, 'ended');

  const mark = handset.mark();
  await intercom.command({ cmd: 'hangup' });
  await handset.waitFor(isEvent('call.state', (l) => callState(l)?.state === 'ended'), 5000, 'handset hung up', mark);
  const codes = await Promise.all([intercom, handset, phone].map(async (e) => {
    await e.close();
    return e.exited;
  }));
  t.same(codes, [0, 0, 0], 'every endpoint process exits cleanly');
});
