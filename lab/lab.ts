import { emitKeypressEvents } from 'node:readline';
import { performance } from 'node:perf_hooks';
import type { Writable } from 'node:stream';
import { createLogger, NS } from '../platform/log.ts';
import { toSweepError } from '../core/errors.ts';
import { watchLoopStalls } from '../runtime/util/loop-stalls.ts';
import type { EndpointEvents } from '../core/session/events.ts';
import type { SimulatedAnalysingSink } from '../drivers/audio/simulated.ts';
import { World, LAB_CAST } from './world.ts';
import { startLabDiagnostics } from './lab-broker.ts';
import { intercomCallsHandset, pullSweep, pushSweep, ringHousehold, waitForWarmLinks, waitUntil } from './story.ts';
import { startLabPanels } from './lab-panels.ts';
import type { Logger } from '../platform/log.ts';

export interface LabOptions {
  demo: boolean;
  host: string;
  port: number;
  logLevel: string;
  out: Writable;
}

const KEYS = `
  keys:  c  intercom bell (rings alice's flat: handset and phone)
         a  handset answer key     A  the phone answers      x  decline (handset)
         s  handset sweep button: push to the phone, or take the call back
         d  handset door button (the intercom's relay)   p  phone: "take the call here"
         b  handset pulls the call back                  h  hang up (intercom)
         i  who hears what                               q  quit
`;

/**
 * The lab: an access server, a door intercom, a desk handset and a simulated smartphone on
 * loopback with simulated audio. Interactive by default; `demo` runs the story unattended and
 * prints one JSON summary as its last line.
 */
export async function runLab(opts: LabOptions): Promise<number> {
  const log = createLogger({ level: opts.logLevel, destination: process.stderr });
  const print = (line: string) => opts.out.write(`${line}\n`);
  const t0 = performance.now();
  const stamp = () => `[${((performance.now() - t0) / 1000).toFixed(3).padStart(7)}s]`;

  print('Sweep lab: starting the access server and three endpoints on loopback…');
  const world = await World.start({ ...LAB_CAST, log: log.child({ ns: NS.lab }), host: opts.host, port: opts.port });
  for (const [id, we] of world.endpoints) {
    const e = we.endpoint;
    e.bus.on(world, 'call.state', (ev) => print(`${stamp()} ${id.padEnd(8)} call ${ev.call.state.padEnd(8)} with ${ev.call.peer.endpointId}${ev.reason ? ` (${ev.reason})` : ''}`));
    e.bus.on(world, 'sweep.finished', (ev) => print(`${stamp()} ${id.padEnd(8)} ${describeSweep(ev)}`));
    // H11: the household ring's fan-out, each endpoint's fate and the answer, with ms since the bell.
    e.bus.on(world, 'ring.started', (ev) => print(`${stamp()} ${id.padEnd(8)} ring ${ev.account}: fan-out to ${ev.endpoints.join(', ') || 'nobody online'}`));
    e.bus.on(world, 'ring.fork', (ev) => print(`${stamp()} ${id.padEnd(8)} ring ${ev.endpointId.padEnd(8)} ${ev.state.padEnd(9)} +${ev.ms.toFixed(1)}ms${ev.reason ? ` (${ev.reason})` : ''}`));
    e.bus.on(world, 'ring.answered', (ev) => print(`${stamp()} ${id.padEnd(8)} ring answered on ${ev.by.label || ev.by.endpointId} +${ev.ms.toFixed(1)}ms`));
    e.bus.on(world, 'ring.ended', (ev) => print(`${stamp()} ${id.padEnd(8)} ring ${ev.outcome} +${ev.ms.toFixed(1)}ms`));
    e.bus.on(world, 'link.state', (ev) => print(`${stamp()} ${id.padEnd(8)} link ${ev.up ? 'up  ' : 'down'} ↔ ${ev.peerId}${ev.reason ? ` (${ev.reason})` : ''}`));
  }
  print(`access server ${world.server.url}  (web ${world.server.httpUrl})`);
  // Diagnostics over MQTT (docs/mqtt.md) on an embedded loopback broker; the lab runs without it if it fails.
  const diag = await startLabDiagnostics(world, log.child({ ns: NS.lab })).catch(() => undefined);
  if (diag) print(`diagnostics: ${diag.url}  (sweep diag watch --url ${diag.url} --protocol 4)`);
  print(`accounts: alice (handset, phone), door (intercom); passwords were generated for this run only`);
  // The person at the keyboard needs alice's one-run password to log in on the phone page; an
  // unattended demo (whose output may land in CI logs) does not print it.
  const credentials = opts.demo ? 'log in as alice' : `log in as alice, password ${world.passwords.get('alice') ?? '?'}`;
  print(`phone page: ${world.server.httpUrl}/  (${credentials}; from another device: --host <LAN address>, see README)`);

  let summary: string | undefined;
  try {
    await waitForWarmLinks(world, [['handset', 'phone']]);
    if (!opts.demo) return await runInteractive(world, print, log);
    const result = await runDemo(world, print);
    summary = JSON.stringify(result);
    return result.failures === 0 ? 0 : 1;
  } finally {
    for (const we of world.endpoints.values()) we.endpoint.bus.removeOwner(world);
    await diag?.close();
    await world.close();
    // The demo's last line is its JSON summary, for scripts.
    if (summary) print(summary);
  }
}

function describeSweep(ev: EndpointEvents['sweep.finished']): string {
  const steps = ev.timeline.map((s) => `${s.step} ${s.ms.toFixed(1)}ms`).join(' → ');
  return `sweep ${ev.role} ${ev.outcome}${ev.code ? ` [${ev.code}]` : ''}: ${steps}`;
}

async function runDemo(world: World, print: (l: string) => void): Promise<{ sweeps: number; maxAudioGapMs: number; maxLoopStallMs: number; failures: number }> {
  let failures = 0;
  let sweeps = 0;
  const latencies: Record<string, number> = {};
  const farEnd = world.get('intercom');
  let maxAudioGapMs = 0;
  // The lab runs every endpoint in this process: a stall of its event loop (host load) widens the
  // measured gap without any fault of the sweep, so the summary reports the longest one beside it.
  let maxLoopStallMs = 0;
  const sweepWindow = async (fn: () => Promise<void>) => {
    const stalls = watchLoopStalls();
    const since = performance.now();
    try {
      await fn();
      await new Promise((res) => setTimeout(res, 300));
      maxAudioGapMs = Math.max(maxAudioGapMs, farEnd.sink.maxGapMs(since));
    } finally {
      maxLoopStallMs = Math.max(maxLoopStallMs, stalls.stop());
    }
  };
  const step = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      failures += 1;
      print(`demo step "${name}" failed: ${toSweepError(err).message}`);
    }
  };
  await step('the bell rings the household; the phone answers, the handset stops (H1, H2)', async () => {
    const ring = await ringHousehold(world, ['handset', 'phone']);
    const { othersStoppedMs } = await ring.answer('phone');
    latencies.allRingingMs = round(ring.allRingingMs);
    latencies.othersStoppedMs = round(othersStoppedMs);
    await farEnd.endpoint.calls.hangup('demo: next story');
    await waitUntil(() => world.get('phone').endpoint.calls.snapshot()?.state === 'ended', 3000, 'phone call ended');
  });
  await step('intercom calls handset, handset answers', () => intercomCallsHandset(world));
  await step('phone links to the intercom ahead of need', () => waitForWarmLinks(world, [['phone', 'intercom']]));
  await new Promise((r) => setTimeout(r, 300));
  await step('push sweep handset → phone', () =>
    sweepWindow(async () => {
      const r = await pushSweep(world, 'handset', 'phone');
      await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 3000, 'handset leg ended');
      latencies.pushMs = round(r.ms);
      sweeps += 1;
    }),
  );
  await step('pull back handset ← phone', async () => {
    await waitUntil(() => world.get('handset').endpoint.calls.siblingCallsSnapshot().length > 0, 3000, 'handset knows the phone call');
    await waitForWarmLinks(world, [['handset', 'intercom']]);
    await sweepWindow(async () => {
      const r = await pullSweep(world, 'handset', 'phone');
      latencies.pullMs = round(r.ms);
      sweeps += 1;
    });
  });
  await step('hang up', async () => {
    await farEnd.endpoint.calls.hangup('demo over');
    await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 3000, 'handset call ended');
  });
  return { sweeps, maxAudioGapMs: round(maxAudioGapMs), maxLoopStallMs: round(maxLoopStallMs), failures, ...latencies };
}

async function runInteractive(world: World, print: (l: string) => void, log: Logger): Promise<number> {
  if (!process.stdin.isTTY) {
    print('stdin is not a terminal: run `npm start -- --demo` for the unattended story.');
    return 2;
  }
  print(KEYS);
  // The keys act through simulated panels, so presses take the same path as hardware buttons.
  const panels = await startLabPanels(world, log, print);
  emitKeypressEvents(process.stdin);
  process.stdin.setRawMode(true);
  const act = (what: string, fn: () => Promise<unknown>) => {
    print(`> ${what}`);
    fn().catch((err: unknown) => print(`  ${what} failed: ${toSweepError(err).code} ${toSweepError(err).message}`));
  };
  const ep = (id: string) => world.get(id).endpoint;
  await new Promise<void>((resolve) => {
    const onKey = (_: string, key: { name?: string; ctrl?: boolean; shift?: boolean }) => {
      if (key.ctrl && (key.name === 'c' || key.name === 'd')) key = { name: 'q' };
      switch (key.name) {
        case 'c':
          return act('intercom bell', () => panels.intercom.press('call'));
        case 'x':
          return act('handset hang-up key', () => panels.handset.press('hangup'));
        case 'a': {
          // H2: `a` answers on the handset (its answer key), `A` on the phone; the other stops ringing.
          const target = key.shift ? 'phone' : 'handset';
          if (ep(target).calls.snapshot()?.state === 'ringing') {
            return act(`${target} answers`, () => (target === 'handset' ? panels.handset.press('answer') : ep('phone').calls.answer()));
          }
          const ringing = [...world.endpoints.values()].find((w) => {
            const s = w.endpoint.calls.snapshot();
            return s?.state === 'ringing' && s.direction === 'in';
          });
          if (ringing) return act(`${ringing.spec.id} answers`, () => ringing.endpoint.calls.answer());
          // A call sent to a device that asks first (S10) rings there too.
          const invited = [...world.endpoints.values()].find((w) => w.endpoint.calls.pendingInvitesSnapshot().length > 0);
          if (invited) return act(`${invited.spec.id} takes the call sent to it`, () => invited.endpoint.calls.acceptInvite());
          return print('  nobody is ringing');
        }
        case 's':
          return act('handset sweep button', () => panels.handset.press('sweep'));
        case 'd':
          return act('handset door button', () => panels.handset.press('door'));
        case 'p':
          return act('phone: take the call here', () => ep('phone').calls.pull({ from: 'handset' }));
        case 'b':
          return act('handset: pull the call back', () => ep('handset').calls.pull({ from: 'phone' }));
        case 'h':
          return act('intercom hangs up', () => ep('intercom').calls.hangup());
        case 'i':
          for (const [id, w] of world.endpoints) {
            const s = w.endpoint.calls.snapshot();
            print(`  ${id.padEnd(8)} ${s ? `${s.state} with ${s.peer.endpointId}` : 'idle'}; hears ${describeHearing(w.sink)}`);
          }
          return;
        case 'q':
          process.stdin.off('keypress', onKey);
          process.stdin.setRawMode(false);
          process.stdin.pause();
          resolve();
          return;
      }
    };
    process.stdin.on('keypress', onKey);
  });
  await panels.close();
  return 0;
}

function describeHearing(sink: SimulatedAnalysingSink): string {
  const since = performance.now() - 1000;
  const hz = sink.frequencyHz(since);
  if (hz === null) return 'silence';
  const who = LAB_CAST.endpoints.find((e) => Math.abs(e.frequencyHz - hz) <= 20);
  return `${Math.round(hz)} Hz (${who ? who.id : 'unknown'}) at ${sink.levelDbfs(since).toFixed(1)} dBFS`;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
