import { ProcessWorld, callAnswered, callOf, isEvent, type Line } from '../lab/process-world.ts';
import type { ChildEndpoint } from '../lab/child-endpoint.ts';
import { percentile, round } from './stats.ts';

/**
 * Faults as a building makes them (issue 12), each endpoint in its own process on loopback:
 * - holder crash: the handset is SIGKILLed mid-call and the phone takes the call at once (S9).
 *   `deadHolderDetectMs`: kill → the phone's link to the handset closes (L5);
 *   `audioBackMs`: kill → the intercom plays the phone (its far-end move completes).
 * - intercom restart: the intercom is SIGKILLed mid-call and restarted on the same state, then
 *   rings at once. `zombieEndMs`: restart began → the handset's old call ended (L6);
 *   `zombieCallsLeft`: old calls still up after the new call rang (0 is right).
 * `n` rounds of each, bounded.
 */
export async function run(opts: { n?: number } = {}): Promise<Record<string, unknown>> {
  const n = opts.n ?? 3;
  const world = await ProcessWorld.start(['alice', 'door'], [['alice', 'door']]);
  const intercomSpec = { id: 'intercom', kind: 'intercom', account: 'door', frequencyHz: 330, label: 'Front door' } as const;
  const handsetSpec = { id: 'handset', kind: 'deskphone', account: 'alice', frequencyHz: 550, label: 'Desk handset' } as const;
  const phoneSpec = { id: 'phone', kind: 'phone', account: 'alice', frequencyHz: 770, label: 'Phone', invites: 'auto' } as const;
  const ringAndAnswer = (door: ChildEndpoint, desk: ChildEndpoint): Promise<void> => callAnswered(door, desk, 'handset');
  try {
    let door = await world.endpoint(intercomSpec);
    const cell = await world.endpoint(phoneSpec);
    const detect: number[] = [];
    const audioBack: number[] = [];
    for (let i = 0; i < n; i++) {
      const before = cell.mark();
      const desk = await world.endpoint(handsetSpec);
      await cell.waitFor(isEvent('link.state', (l) => l.peerId === 'handset' && l.up === true), 15_000, 'phone↔handset', before);
      await ringAndAnswer(door, desk);
      await cell.waitFor(isEvent('sibling.call', (l: Line) => l.endpointId === 'handset' && l.call !== null), 5000, 'the phone knows the call', before);
      await cell.waitFor(isEvent('link.state', (l) => l.peerId === 'intercom' && l.up === true), 10_000, 'phone linked to the intercom');
      const doorMark = door.mark();
      const cellMark = cell.mark();
      const killedAt = Date.now();
      await world.kill(desk);
      const pulled = cell.command({ cmd: 'pull' }, 15_000);
      await cell.waitFor(isEvent('link.state', (l) => l.peerId === 'handset' && l.up === false), 10_000, 'handset seen dead', cellMark);
      detect.push(Date.now() - killedAt);
      await door.waitFor(isEvent('sweep.finished', (l) => l.role === 'farEnd' && l.outcome === 'completed'), 10_000, 'far end plays the phone', doorMark);
      audioBack.push(Date.now() - killedAt);
      await pulled;
      await door.command({ cmd: 'hangup' });
    }

    const zombie: number[] = [];
    let zombiesLeft = 0;
    const desk = await world.endpoint(handsetSpec);
    for (let i = 0; i < n; i++) {
      await ringAndAnswer(door, desk);
      const mark = desk.mark();
      await world.kill(door);
      const restartedAt = Date.now();
      door = await world.endpoint(intercomSpec);
      await door.command({ cmd: 'call', to: 'handset' });
      await desk.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ended'), 15_000, 'old call ended', mark);
      zombie.push(Date.now() - restartedAt);
      await desk.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ringing'), 5000, 'new call rings', mark);
      const s = await desk.command({ cmd: 'state' });
      if (callOf(s)?.state !== 'ringing') zombiesLeft += 1;
      await door.command({ cmd: 'hangup' });
    }
    return {
      n,
      deadHolderDetectP50Ms: round(percentile(detect, 0.5)),
      deadHolderDetectMaxMs: round(Math.max(...detect)),
      audioBackAfterHolderCrashP50Ms: round(percentile(audioBack, 0.5)),
      audioBackAfterHolderCrashMaxMs: round(Math.max(...audioBack)),
      zombieEndAfterRestartP50Ms: round(percentile(zombie, 0.5)),
      zombieCallsLeft: zombiesLeft,
    };
  } finally {
    await world.close();
  }
}
