import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EndpointConfigInput } from '../firmware-config/endpoint-config.ts';
import { World, LAB_CAST } from '../lab/world.ts';
import { ChildEndpoint } from '../lab/child-endpoint.ts';
import { waitForEvent } from '../lab/story.ts';
import { createLogger } from '../platform/log.ts';
import { buildBundle } from '../deploy/bundle.ts';
import { cpuMsOf, rssMbOf, threadBreakdown, threadsOf } from './proc.ts';
import { ReferenceWake } from './reference-wake.ts';
import { round } from './stats.ts';

export interface ChildCallResult {
  cpuMsPerCallSecond: number;
  /** The same over the endpoint's first call, while V8 still optimises the audio path (the endpoint's own process only). */
  firstCallCpuMsPerCallSecond: number;
  idleCpuMsPerSecond: number;
  /** CPU µs of one empty timer wake-up of a bare Node process over the same window (bench/reference-wake.ts). */
  referenceWakeUs: number;
  rssMb: number;
  /** Frames the in-process handset played, and the tone it heard (Hz). */
  framesHeardByHandset: number;
  heardHz: number | null;
  threads: ReturnType<typeof threadBreakdown>;
  /** CPU ms per second of each process the endpoint started (aplay), by command name. */
  children: Record<string, number>;
}

/**
 * One endpoint as a device runs it: the intercom, from the bundle, in its own process (with
 * whatever processes it starts, such as aplay), in a call with the lab's handset running in this
 * process. CPU and RSS come from /proc over `seconds` of call, 2 s after it was answered.
 *
 * The measured call is the endpoint's second: a device in service has taken calls before, and
 * V8 needs a few seconds of the first call to optimise the audio path. The first call
 * (`firstCallSeconds`, measured the same way) is reported apart.
 */
export async function measureChildCall(opts: {
  seconds: number;
  firstCallSeconds?: number;
  audio?: EndpointConfigInput['audio'];
  nodeArgs?: string[];
}): Promise<ChildCallResult> {
  await buildBundle();
  const dir = await mkdtemp(join(tmpdir(), 'sweep-bench-child-'));
  const world = await World.start({
    ...LAB_CAST,
    endpoints: LAB_CAST.endpoints.filter((e) => e.id === 'handset'),
    log: createLogger({ level: 'silent' }),
  });
  let child: ChildEndpoint | undefined;
  let reference: ReferenceWake | undefined;
  try {
    child = await ChildEndpoint.start(
      {
        endpoint: { id: 'intercom', kind: 'intercom', label: 'Front door intercom' },
        access: { url: world.server.url, serverPublicKey: world.server.publicKeyRaw, username: 'door', password: world.passwords.get('door')! },
        stateDir: join(dir, 'intercom'),
        log: { level: 'warn' },
        ...(opts.audio ? { audio: opts.audio } : {}),
      },
      join(dir, 'intercom.json'),
      { nodeArgs: opts.nodeArgs ?? [], bundle: true },
    );
    // Idle first: logged in, no call.
    await sleep(1000);
    const idle0 = await cpuMsOf(child.pid);
    await sleep(5000);
    const idleCpuMsPerSecond = ((await cpuMsOf(child.pid)) - idle0) / 5;
    const handset = world.get('handset');
    const intercom = child;
    const call = async (): Promise<void> => {
      const ringing = waitForEvent(handset.endpoint, 'call.state', (e) => e.call.state === 'ringing', 10_000);
      await intercom.command({ cmd: 'call', to: 'handset' });
      await ringing;
      await handset.endpoint.calls.answer();
      await sleep(2000);
    };
    const firstCallSeconds = opts.firstCallSeconds ?? 10;
    await call();
    const first0 = await cpuMsOf(child.pid);
    await sleep(firstCallSeconds * 1000);
    const firstCallCpuMsPerCallSecond = ((await cpuMsOf(child.pid)) - first0) / firstCallSeconds;
    const ended = waitForEvent(handset.endpoint, 'call.state', (e) => e.call.state === 'ended', 10_000);
    await child.command({ cmd: 'hangup' });
    await ended;
    await sleep(1000);
    await call();
    const kids = await childrenOf(child.pid);
    const pids = [child.pid, ...kids];
    reference = await ReferenceWake.start();
    const threads0 = await threadsOf(child.pid);
    const cpu0 = await cpuOfEach(pids);
    const since = performance.now();
    await sleep(opts.seconds * 1000);
    const cpu1 = await cpuOfEach(pids);
    const referenceWakeUs = await reference.stop();
    const perSecond = pids.map((_, i) => (cpu1[i]! - cpu0[i]!) / opts.seconds);
    const children: Record<string, number> = {};
    for (const [i, pid] of kids.entries()) {
      const name = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => String(pid))).trim();
      children[name] = round((children[name] ?? 0) + perSecond[i + 1]!, 2);
    }
    const threads1 = await threadsOf(child.pid);
    let rssMb = 0;
    for (const pid of pids) rssMb += await rssMbOf(pid).catch(() => 0);
    return {
      cpuMsPerCallSecond: round(perSecond.reduce((x, y) => x + y, 0), 2),
      firstCallCpuMsPerCallSecond: round(firstCallCpuMsPerCallSecond, 2),
      referenceWakeUs,
      idleCpuMsPerSecond: round(idleCpuMsPerSecond, 2),
      rssMb: round(rssMb, 1),
      framesHeardByHandset: handset.sink.framesSince(since).length,
      heardHz: handset.sink.frequencyHz(since),
      // Where the CPU goes: on a VM every wake-up is costly, so wakes/s matter as much as work.
      threads: threadBreakdown(threads0, threads1, opts.seconds),
      children,
    };
  } finally {
    await reference?.close();
    await child?.close();
    await world.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** CPU ms used so far by each process (0 for one that has gone). */
function cpuOfEach(pids: number[]): Promise<number[]> {
  return Promise.all(pids.map((pid) => cpuMsOf(pid).catch(() => 0)));
}

/** Direct children of a process (Linux /proc/PID/task/TID/children). */
async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.split(/\s+/).filter(Boolean).map(Number);
}
