// Issue 12, "Survive the field": each numbered failure as a building produces it — endpoints in
// their own processes, crashes by SIGKILL, restarts on the same state directory as systemd does.
import t from 'tap';
import { callAnswered, callOf, exitsWithin, isEvent, ProcessWorld } from '../../lab/process-world.ts';

const ACCOUNTS = ['alice', 'door'];
const BUDDIES: Array<[string, string]> = [['alice', 'door']];
const intercom = { id: 'intercom', kind: 'intercom', account: 'door', frequencyHz: 330, label: 'Front door' } as const;
const handset = { id: 'handset', kind: 'deskphone', account: 'alice', frequencyHz: 550, label: 'Desk handset' } as const;
const phone = { id: 'phone', kind: 'phone', account: 'alice', frequencyHz: 770, label: 'Phone', invites: 'auto' } as const;

const refusal = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as Error).message;
  }
};

void t.test('call to an offline endpoint is refused OFFLINE and the intercom stays up (issue 12 item 1)', async (t) => {
  const world = await ProcessWorld.start(ACCOUNTS, BUDDIES);
  t.teardown(() => world.close());
  // A short set-up deadline: the stray wait used to reject unhandled once it ran out.
  const door = await world.endpoint({ ...intercom, extra: { links: { setupTimeoutMs: 1500, idleCloseMs: 60_000 } } });
  const cell = await world.endpoint({ ...phone, extra: { links: { setupTimeoutMs: 1500, idleCloseMs: 60_000 } } });
  t.match(await refusal(door.command({ cmd: 'call', to: 'handset' })), /OFFLINE/, 'the bell for an empty flat is refused OFFLINE');
  t.match(await refusal(cell.command({ cmd: 'pull', from: 'handset' })), /OFFLINE|NOT_FOUND/, 'a pull from an offline sibling is refused');
  t.equal(await exitsWithin(door, 3000), false, 'the intercom is still running after the set-up deadline');
  t.equal(await exitsWithin(cell, 0), false, 'the phone is still running');
  t.same((await door.command({ cmd: 'state' })).call, null, 'and answers with no call');
});

void t.test('restarted intercom ends the old call at once and can call again (issue 12 item 2)', async (t) => {
  const world = await ProcessWorld.start(ACCOUNTS, BUDDIES);
  t.teardown(() => world.close());
  let door = await world.endpoint(intercom);
  const desk = await world.endpoint(handset);
  await callAnswered(door, desk, 'handset');

  const mark = desk.mark();
  await world.kill(door);
  const restartedAt = Date.now();
  door = await world.endpoint(intercom);
  // A visitor presses the bell as soon as the intercom is back.
  await door.command({ cmd: 'call', to: 'handset' });
  const ended = await desk.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ended'), 15_000, 'the old call ended at the handset', mark);
  const zombieMs = Date.now() - restartedAt;
  t.match(String(ended.reason), /restarted/, `the handset's old call ended: ${String(ended.reason)}`);
  await desk.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ringing'), 5000, 'the handset rings for the new call', mark);
  t.ok(zombieMs < 8000, `no zombie call: the old one ended ${zombieMs} ms after the restart began`);
});

void t.test('intercom killed and not restarted: the handset\'s call ends after the C5 grace, not half a minute (issue 12 item 2, L5)', async (t) => {
  const world = await ProcessWorld.start(ACCOUNTS, BUDDIES);
  t.teardown(() => world.close());
  const door = await world.endpoint(intercom);
  const desk = await world.endpoint(handset);
  await callAnswered(door, desk, 'handset');
  const mark = desk.mark();
  const killedAt = Date.now();
  await world.kill(door);
  const down = await desk.waitFor(isEvent('link.state', (l) => l.peerId === 'intercom' && l.up === false), 10_000, 'link to the dead intercom closed', mark);
  const detectMs = Date.now() - killedAt;
  t.match(String(down.reason), /silent/, `the handset knows the intercom is dead after ${detectMs} ms: ${String(down.reason)}`);
  t.ok(detectMs <= 4000, `dead peer detected within the L5 bound (${detectMs} ms)`);
  const ended = await desk.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ended'), 15_000, 'the call ended', mark);
  t.match(String(ended.reason), /link lost/);
});
