// Issue 17: the phone away from home, behind a symmetric NAT, and the flat's devices behind the
// home router: links only through the TURN relay the access server hands out (A13).
import t, { type Test } from 'tap';
import { natNetProblem } from '../helpers/nat-net.ts';
import { flat, pathTo, turnFlags, type Flat } from '../helpers/nat-flat.ts';
import { callOf, isEvent, type Line } from '../../lab/process-world.ts';

/** The intercom rings the handset, the handset answers, the phone pulls the call, then sends it back. */
async function sweepThroughTheRelay(t: Test, f: Flat): Promise<void> {
  await f.intercom.command({ cmd: 'call', to: 'handset', doorRights: true });
  await f.handset.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ringing'), 10_000, 'ringing');
  await f.handset.command({ cmd: 'answer' });
  await f.phone.waitFor(isEvent('link.state', (l) => l.peerId === 'intercom' && l.up === true), 20_000, 'phone linked to the intercom ahead of need, through the relay');
  await f.phone.waitFor(isEvent('sibling.call', (l) => l.endpointId === 'handset' && l.call !== null), 10_000, 'the phone knows the handset call');
  const mark = f.handset.mark();
  await f.phone.command({ cmd: 'pull', from: 'handset' }, 15_000);
  // The newcomer's pull completes only when the far end's audio is heard; the far end moves the call
  // (and ends the handset leg) only when it hears the newcomer (S7): both directions are proven.
  const pulled = await f.phone.waitFor(isEvent('sweep.finished', (l) => l.role === 'newcomer'), 15_000, 'pull finished');
  t.equal(pulled.outcome, 'completed', `the phone takes the call over the relay (${typeof pulled.reason === 'string' ? pulled.reason : 'ok'})`);
  await f.handset.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ended'), 10_000, 'handset leg ended', mark);
  t.equal(callOf(await f.intercom.command({ cmd: 'state' }))?.peer.endpointId, 'phone', 'the intercom talks to the phone');
  const pullMs = (pulled.timeline as Array<{ step: string; ms: number }>).find((s) => s.step === 'firstFarEndAudio')?.ms;
  t.comment(`sweep to the phone through the relay: ${String(pullMs)} ms to the far end's first audio`);
  // And back: the handset pulls it home.
  const back = f.phone.mark();
  await f.handset.waitFor(isEvent('sibling.call', (l) => l.endpointId === 'phone' && l.call !== null), 10_000, 'the handset knows the phone call');
  await f.handset.command({ cmd: 'pull', from: 'phone' }, 15_000);
  await f.phone.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ended'), 10_000, 'phone leg ended', back);
  t.equal(callOf(await f.intercom.command({ cmd: 'state' }))?.peer.endpointId, 'handset', 'sent back: the intercom talks to the handset');
}

// Namespaces, coturn and several flats in turn; the L9 cases wait a minute for fresh credentials.
t.setTimeout(600_000);

void t.test('answering from outside the home, through real NAT (issue 17)', async (t) => {
  const problem = natNetProblem();
  if (problem) {
    t.fail(problem);
    return;
  }

  await t.test('without TURN the phone cannot link to the handset, and says why (no silent "no call")', async (t) => {
    const f = await flat(t, () => []);
    const failed = (await f.phone.waitFor(isEvent('link.failed', (l) => l.peerId === 'handset'), 30_000, 'the phone reports the handset unreachable')) as Line & { reason: string; attempts: number };
    t.match(failed.reason, /within|closed|failed/, `the reason is told: ${failed.reason}`);
    t.notOk(((await f.phone.command({ cmd: 'state' })).links as string[]).includes('handset'), 'no link to the handset');
  });

  await t.test('with TURN from the access server the phone links through the relay, takes the call by sweep, is heard, and sends it back', async (t) => {
    const f = await flat(t, (net, file) => turnFlags(net, file));
    await f.phone.waitFor(isEvent('link.state', (l) => l.peerId === 'handset' && l.up === true), 30_000, 'phone↔handset link through the relay');
    const path = await pathTo(f.phone, 'handset');
    t.ok(path && (path.local === 'relay' || path.remote === 'relay'), `the sibling link runs through the relay (${JSON.stringify(path)})`);
    await sweepThroughTheRelay(t, f);
    const home = await pathTo(f.handset, 'intercom');
    t.same(home && { local: home.local, remote: home.remote }, { local: 'host', remote: 'host' }, 'the flat\'s own devices talk directly, not through the relay');
  });

  // libjuice (the device's ICE agent) relays over UDP only (libdatachannel#1484): a device on a
  // network that blocks UDP cannot link even with TURN/TCP configured, and says so. Phones run
  // the page, whose browser does TURN over TCP and TLS.
  await t.test('a device on a network that blocks UDP cannot link even through TURN, and says why', async (t) => {
    const f = await flat(t, (net, file) => turnFlags(net, file), (net) => net.blockMobileUdp());
    const failed = (await f.phone.waitFor(isEvent('link.failed', (l) => l.peerId === 'handset'), 30_000, 'the phone reports the handset unreachable')) as Line & { reason: string };
    t.match(failed.reason, /within|closed|failed/, `the reason is told: ${failed.reason}`);
  });

  await t.test('relay-only policy: the intercom never learns the phone\'s addresses', async (t) => {
    const f = await flat(t, (net, file) => turnFlags(net, file, '--relay-only'));
    await f.phone.waitFor(isEvent('link.state', (l) => l.peerId === 'handset' && l.up === true), 30_000, 'phone↔handset link');
    await f.intercom.command({ cmd: 'call', to: 'handset' });
    await f.handset.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ringing'), 10_000, 'ringing');
    await f.handset.command({ cmd: 'answer' });
    await f.phone.waitFor(isEvent('link.state', (l) => l.peerId === 'intercom' && l.up === true), 20_000, 'phone↔intercom link');
    const seen = await pathTo(f.intercom, 'phone');
    t.same(seen && { local: seen.local, remote: seen.remote }, { local: 'relay', remote: 'relay' }, 'both sides relayed: the intercom sees only the relay address');
  });

  await t.test('fresh TURN credentials: a relayed link is remade with them before the old ones expire (L9)', async (t) => {
    // 120 s credentials: the access server sends fresh ones a minute before they expire (A13).
    const f = await flat(t, (net, file) => turnFlags(net, file, '--turn-ttl', '120'));
    await f.phone.waitFor(isEvent('link.state', (l) => l.peerId === 'handset' && l.up === true), 30_000, 'phone↔handset link');
    const relayed = (p: Awaited<ReturnType<typeof pathTo>>): boolean => p?.local === 'relay' || p?.remote === 'relay';
    const path = await pathTo(f.phone, 'handset');
    t.ok(relayed(path), `the link runs through a relay (${JSON.stringify(path)})`);
    const marks = { phone: f.phone.mark(), handset: f.handset.mark() };
    await f.phone.waitFor(isEvent('link.state', (l) => l.peerId === 'handset' && l.up === false), 90_000, 'the relayed link is remade', marks.phone);
    // The side whose own relay carries the link closes it; the other hears it close.
    const reasons = [...f.phone.seen().slice(marks.phone), ...f.handset.seen().slice(marks.handset)]
      .filter((l) => l.event === 'link.state' && l.up === false)
      .map((l) => String(l.reason));
    t.ok(reasons.includes('TURN credentials renewed (L9)'), `closed because fresh credentials came, not because it broke (${reasons.join('; ')})`);
    await f.phone.waitFor(isEvent('link.state', (l) => l.peerId === 'handset' && l.up === true), 30_000, 'and made again at once (L4)', marks.phone);
    t.ok(relayed(await pathTo(f.phone, 'handset')), 'through the relay, with the fresh credentials');
  });
});
