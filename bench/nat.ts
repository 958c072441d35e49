import { performance } from 'node:perf_hooks';
import { flat, pathTo, turnFlags, type Flat, type Path } from '../test/helpers/nat-flat.ts';
import { callOf, isEvent, type Line } from '../lab/process-world.ts';
import type { ChildEndpoint } from '../lab/child-endpoint.ts';
import { percentile, round } from './stats.ts';

/**
 * Answering the door from anywhere (issue 17), through real NAT: the flat's intercom and handset
 * behind the home router, the phone on mobile data behind a symmetric NAT, the access server and
 * coturn on the public side (test/helpers/nat-net.ts), each endpoint its own process.
 *
 * - `linkSetupDirectMs` / `linkSetupTurnMs`: a link made on demand (L3) by placing a call, from the
 *   `call` command to the caller's `link.state` up (both hellos verified), as this process sees
 *   the two lines. Direct: the intercom calls the handset (home↔home, host candidates). TURN: the
 *   phone calls the intercom (only the relay gets through). Both have the same shape: the caller
 *   asks with `connect` through the access server and the callee offers (L1); the call is hung up
 *   while ringing and the next round starts once the idle link is gone (handset and phone close
 *   idle links after 3 s, so no link is reused).
 * - `sweepViaTurnMs`: the phone pulls the call from the handset; the phone's `sweep.finished`
 *   timeline's `firstFarEndAudio` (pull started → the intercom's first audio at the phone, through
 *   the relay). Goal ≤ 100 ms. `sweepHomeMs`: the handset pulling it back, the same step.
 * - `farEndAudioGapMs`: the longest gap between frames the intercom played during each sweep
 *   (the simulated sink, stdio `audio`); `toPhoneMax` over the pulls to the phone, `homeMax` over
 *   the pulls back. Goal ≤ 40 ms.
 * - `relayAddedOneWayMs`: (median ctl round trip intercom→phone through the relay − median
 *   intercom→handset direct) / 2 (stdio `ping`): what coturn and the NAT hops add one way. Taken
 *   after every sweep, so each peer is as often the busy holder as the idle sibling, from the
 *   intercom, which is in the call throughout. libdatachannel's `rtt()` is no use here: SCTP's
 *   smoothed RTT in whole ms, inflated by the delayed SACK (~20 ms on a quiet link).
 * - `paths`: the ICE candidate pair types each link took (`state`), so a reader sees the relay was used.
 *
 * Every loop is bounded in rounds and by WALL_MS; the rounds done are the `n`s.
 */
const WALL_MS = 120_000;
/**
 * The handset's and the phone's idle links close after 3 s, so each link-set-up round starts with
 * none. Not less: LinkSet's idle check also closes a link still being set up once it is that old,
 * and a relayed set-up takes over 1 s here.
 */
const IDLE = { links: { idleCloseMs: 3000 } };

const ms = (values: number[]) => ({ p50: round(percentile(values, 0.5)), p95: round(percentile(values, 0.95)), n: values.length });
const up = (peer: string) => isEvent('link.state', (l) => l.peerId === peer && l.up === true);
const ended = isEvent('call.state', (l) => callOf(l)?.state === 'ended');
const pick = (p: Path) => p && { local: p.local, remote: p.remote, transport: p.transport };

export async function run(opts: { links?: number; sweeps?: number; pingsPerSweep?: number } = {}): Promise<Record<string, unknown>> {
  const rounds = { links: opts.links ?? 6, sweeps: opts.sweeps ?? 12, pings: opts.pingsPerSweep ?? 2 };
  const deadline = performance.now() + WALL_MS;
  const inTime = () => performance.now() < deadline;
  const undo: Array<() => unknown> = [];
  try {
    const f = await flat({ teardown: (fn) => undo.push(fn) }, (net, file) => turnFlags(net, file), undefined, { extra: { handset: IDLE, phone: IDLE } });
    await f.phone.waitFor(up('handset'), 30_000, 'phone↔handset link through the relay');

    const direct: number[] = [];
    const turn: number[] = [];
    const paths: Record<string, Path> = {};
    for (let i = 0; i < rounds.links && inTime(); i++) {
      await noIntercomLinks(f);
      direct.push(await linkSetup(f.intercom, 'handset', f.handset, paths, 'intercom→handset'));
      await noIntercomLinks(f);
      turn.push(await linkSetup(f.phone, 'intercom', f.intercom, paths, 'phone→intercom'));
    }

    // The call: the intercom rings the handset, the handset answers, the phone links to the intercom ahead of need (L3).
    await noIntercomLinks(f);
    const phoneMark = f.phone.mark();
    await f.intercom.command({ cmd: 'call', to: 'handset', doorRights: true });
    await f.handset.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ringing'), 10_000, 'ringing');
    await f.handset.command({ cmd: 'answer' });
    await f.phone.waitFor(up('intercom'), 20_000, 'phone linked to the intercom ahead of need', phoneMark);
    await f.phone.waitFor(isEvent('sibling.call', (l) => l.endpointId === 'handset' && l.call !== null), 10_000, 'the phone knows the handset call', phoneMark);
    paths['phone→handset'] = pick(await pathTo(f.phone, 'handset'));
    paths['intercom→phone'] = pick(await pathTo(f.intercom, 'phone'));
    paths['handset→intercom'] = pick(await pathTo(f.handset, 'intercom'));

    const toPhone: number[] = [];
    const home: number[] = [];
    const gapToPhone: number[] = [];
    const gapHome: number[] = [];
    const rttDirect: number[] = [];
    const rttRelay: number[] = [];
    // Ctl round trips from the intercom, alternating between its direct and its relayed link.
    const ping = async () => {
      for (let k = 0; k < rounds.pings; k++) {
        rttDirect.push(...((await f.intercom.command({ cmd: 'ping', peer: 'handset' })).rttMs as number[]));
        rttRelay.push(...((await f.intercom.command({ cmd: 'ping', peer: 'phone' })).rttMs as number[]));
      }
    };
    for (let i = 0; i < rounds.sweeps && inTime(); i++) {
      const there = await pull(f.phone, 'phone', f.handset, 'handset', f.intercom);
      toPhone.push(there.firstFarEndAudioMs);
      gapToPhone.push(there.gapMs);
      await ping();
      const back = await pull(f.handset, 'handset', f.phone, 'phone', f.intercom);
      home.push(back.firstFarEndAudioMs);
      gapHome.push(back.gapMs);
      await ping();
    }
    await f.intercom.command({ cmd: 'hangup' });

    const median = (xs: number[]) => percentile(xs, 0.5);
    return {
      linkSetupDirectMs: ms(direct),
      linkSetupTurnMs: ms(turn),
      sweepViaTurnMs: ms(toPhone),
      sweepHomeMs: ms(home),
      farEndAudioGapMs: { max: round(Math.max(...gapToPhone, ...gapHome)), toPhoneMax: round(Math.max(...gapToPhone)), homeMax: round(Math.max(...gapHome)), n: gapToPhone.length + gapHome.length },
      relayAddedOneWayMs: round((median(rttRelay) - median(rttDirect)) / 2, 2),
      rttDirectMs: { p50: round(median(rttDirect), 2), n: rttDirect.length },
      rttRelayMs: { p50: round(median(rttRelay), 2), n: rttRelay.length },
      paths,
      goals: { sweepViaTurnMs: 100, farEndAudioGapMs: 40 },
    };
  } finally {
    // Endpoints and server, then the secret's directory, then the namespaces and coturn.
    for (const fn of undo.reverse()) {
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`bench nat: clean-up failed: ${(err as Error).message}\n`);
      }
    }
  }
}

/** `caller` places a call to `peer`: ms from the command to the caller's link up; then hangs up while it rings. */
async function linkSetup(caller: ChildEndpoint, peer: string, callee: ChildEndpoint, paths: Record<string, Path>, name: string): Promise<number> {
  const mark = caller.mark();
  const calleeMark = callee.mark();
  // Waiting before the command is sent: the time is taken when the line arrives.
  const linked = caller.waitFor(up(peer), 15_000, `${name} link`, mark).then(() => performance.now());
  const t0 = performance.now();
  const [at] = await Promise.all([linked, caller.command({ cmd: 'call', to: peer }, 15_000)]);
  paths[name] ??= pick(await pathTo(caller, peer));
  await callee.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ringing'), 10_000, `${peer} ringing`, calleeMark);
  await caller.command({ cmd: 'hangup' });
  await callee.waitFor(ended, 10_000, `${peer} call ended`, calleeMark);
  return at - t0;
}

/** Until the intercom has no link (the handset and phone dropped theirs as idle): the next link is new. */
async function noIntercomLinks(f: Flat): Promise<void> {
  const until = performance.now() + 10_000;
  for (;;) {
    const links = (await f.intercom.command({ cmd: 'state' })).links as string[];
    if (links.length === 0) return;
    if (performance.now() > until) throw new Error(`the intercom still has links to ${links.join(', ')} 10 s after the call`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `newcomer` pulls the call from `holder`: its firstFarEndAudio step, and the intercom's longest audio gap meanwhile. */
async function pull(newcomer: ChildEndpoint, newcomerId: string, holder: ChildEndpoint, holderId: string, intercom: ChildEndpoint): Promise<{ firstFarEndAudioMs: number; gapMs: number }> {
  const since = (await intercom.command({ cmd: 'audio' })).now as number;
  const mark = newcomer.mark();
  const holderMark = holder.mark();
  await newcomer.command({ cmd: 'pull', from: holderId }, 15_000);
  const done = await newcomer.waitFor(isEvent('sweep.finished', (l) => l.role === 'newcomer'), 15_000, 'pull finished', mark);
  if (done.outcome !== 'completed') throw new Error(`pull from ${holderId} ${String(done.outcome)}: ${String(done.reason)}`);
  await holder.waitFor(ended, 10_000, `${holderId} leg ended`, holderMark);
  const gapMs = (await intercom.command({ cmd: 'audio', since })).maxGapMs as number;
  // The old holder learns the new call before it can pull it back (S1).
  await holder.waitFor(isEvent('sibling.call', (l: Line) => l.endpointId === newcomerId && l.call !== null), 10_000, `${holderId} knows ${newcomerId}'s call`, holderMark);
  const step = (done.timeline as Array<{ step: string; ms: number }>).find((s) => s.step === 'firstFarEndAudio');
  if (!step) throw new Error(`pull from ${holderId} finished without firstFarEndAudio`);
  return { firstFarEndAudioMs: step.ms, gapMs };
}
