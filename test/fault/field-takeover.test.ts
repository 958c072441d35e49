// Issue 12, "Survive the field" (holder crashes): each numbered failure as a building produces it — endpoints in
// their own processes, crashes by SIGKILL, restarts on the same state directory as systemd does.
import t, { type Test } from 'tap';
import { callAnswered, callOf, isEvent, ProcessWorld, type Line } from '../../lab/process-world.ts';

const ACCOUNTS = ['alice', 'door'];
const BUDDIES: Array<[string, string]> = [['alice', 'door']];
const intercom = { id: 'intercom', kind: 'intercom', account: 'door', frequencyHz: 330, label: 'Front door' } as const;
const handset = { id: 'handset', kind: 'deskphone', account: 'alice', frequencyHz: 550, label: 'Desk handset' } as const;
const phone = { id: 'phone', kind: 'phone', account: 'alice', frequencyHz: 770, label: 'Phone', invites: 'auto' } as const;

/** Intercom ↔ handset in a call, each in its own process, and the phone ready to take it over (L3). */
async function handsetInCallPhoneReady(t: Test) {
  const world = await ProcessWorld.start(ACCOUNTS, BUDDIES);
  t.teardown(() => world.close());
  const door = await world.endpoint(intercom);
  const desk = await world.endpoint(handset);
  const cell = await world.endpoint(phone);
  await desk.waitFor(isEvent('link.state', (l) => l.peerId === 'phone' && l.up === true), 15_000, 'handset↔phone link');
  await callAnswered(door, desk, 'handset');
  await cell.waitFor(isEvent('link.state', (l) => l.peerId === 'intercom' && l.up === true), 10_000, 'phone linked to the intercom ahead of need');
  await cell.waitFor(isEvent('sibling.call', (l) => l.endpointId === 'handset' && l.call !== null), 5000, 'the phone knows the call');
  return { world, door, desk, cell };
}

void t.test('holder killed mid-call: the phone takes the call over and the door hears it within 5 s (issue 12 item 3, S9, L5)', async (t) => {
  const { world, door, desk, cell } = await handsetInCallPhoneReady(t);

  const mark = door.mark();
  const killedAt = Date.now();
  await world.kill(desk);
  // The resident sees the handset die and takes the call on the phone at once.
  const pulled = await cell.command({ cmd: 'pull' }, 15_000);
  t.equal(pulled.state, 'active', 'the phone holds the call');
  const moved = await door.waitFor(isEvent('sweep.finished', (l: Line) => l.role === 'farEnd' && l.outcome === 'completed'), 10_000, 'far end heard the phone', mark);
  const audioBackMs = Date.now() - killedAt;
  t.ok(moved, 'the far end plays the phone');
  t.ok(audioBackMs <= 5000, `audio back at the door ${audioBackMs} ms after the holder was killed (goal ≤ 5000)`);
  const s = await door.command({ cmd: 'state' });
  t.equal(callOf(s)?.peer.endpointId, 'phone', 'the door talks to the phone');
  t.equal(callOf(s)?.state, 'active', 'and the call never dropped');
});

void t.test('holder killed, phone pulls after its own link to the holder died: the call is still remembered (issue 12 item 3, C5)', async (t) => {
  const { world, door, desk, cell } = await handsetInCallPhoneReady(t);

  const mark = cell.mark();
  const killedAt = Date.now();
  await world.kill(desk);
  const down = await cell.waitFor(isEvent('link.state', (l) => l.peerId === 'handset' && l.up === false), 10_000, 'the phone sees the handset gone', mark);
  const detectMs = Date.now() - killedAt;
  t.ok(detectMs <= 4000, `the phone knows the handset is dead ${detectMs} ms after the kill (L5 bound 3000 ms + scheduling): ${String(down.reason)}`);
  const pulled = await cell.command({ cmd: 'pull' }, 15_000);
  t.equal(pulled.state, 'active', 'the phone took over the dead handset\'s call');
  const s = await door.command({ cmd: 'state' });
  t.equal(callOf(s)?.peer.endpointId, 'phone');
});
