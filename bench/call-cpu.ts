import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { World, LAB_CAST } from '../runtime/lab/world.ts';
import { ChildEndpoint } from '../runtime/lab/child-endpoint.ts';
import { waitForEvent } from '../runtime/lab/story.ts';
import { createLogger } from '../runtime/util/log.ts';
import { cpuMsOf, rssMbOf, threadBreakdown, threadsOf } from './proc.ts';
import { round } from './stats.ts';
import { buildBundle } from '../deploy/bundle.ts';

/**
 * One endpoint (the intercom) in its own process, in a call with the handset for `seconds`:
 * CPU ms per second of call and RSS, read from /proc. The call is measured after a 2 s warm-up.
 */
export async function run(opts: { seconds?: number; nodeArgs?: string[] } = {}): Promise<Record<string, unknown>> {
  const seconds = opts.seconds ?? 20;
  // Measure what a device runs: the bundle, without a TypeScript loader.
  await buildBundle();
  const dir = await mkdtemp(join(tmpdir(), 'sweep-bench-cpu-'));
  const world = await World.start({
    ...LAB_CAST,
    endpoints: LAB_CAST.endpoints.filter((e) => e.id === 'handset'),
    log: createLogger({ level: 'silent' }),
  });
  let child: ChildEndpoint | undefined;
  try {
    child = await ChildEndpoint.start(
      {
        endpoint: { id: 'intercom', kind: 'intercom', label: 'Front door intercom' },
        access: { url: world.server.url, serverPublicKey: world.server.publicKeyRaw, username: 'door', password: world.passwords.get('door')! },
        stateDir: join(dir, 'intercom'),
        log: { level: 'warn' },
      },
      join(dir, 'intercom.json'),
      { nodeArgs: opts.nodeArgs ?? [], bundle: true },
    );
    // Idle first: logged in and linked, no call.
    await new Promise((r) => setTimeout(r, 1000));
    const idle0 = await cpuMsOf(child.pid);
    await new Promise((r) => setTimeout(r, 5000));
    const idleCpuMsPerSecond = ((await cpuMsOf(child.pid)) - idle0) / 5;
    const handset = world.get('handset').endpoint;
    const ringing = waitForEvent(handset, 'call.state', (e) => e.call.state === 'ringing', 10_000);
    await child.command({ cmd: 'call', to: 'handset' });
    await ringing;
    await handset.calls.answer();
    await new Promise((r) => setTimeout(r, 2000));
    const idleRss = await rssMbOf(child.pid);
    const threads0 = await threadsOf(child.pid);
    const cpu0 = await cpuMsOf(child.pid);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const cpu1 = await cpuMsOf(child.pid);
    const threads1 = await threadsOf(child.pid);
    const rssMb = await rssMbOf(child.pid);
    const frames = world.get('handset').sink.frames.length;
    return {
      seconds,
      cpuMsPerCallSecond: round((cpu1 - cpu0) / seconds, 2),
      idleCpuMsPerSecond: round(idleCpuMsPerSecond, 2),
      rssMb: round(Math.max(idleRss, rssMb)),
      framesHeardByHandset: frames,
      // Where the CPU goes: on a VM every wake-up is costly, so wakes/s matter as much as work.
      threads: threadBreakdown(threads0, threads1, seconds),
    };
  } finally {
    await child?.close();
    await world.close();
    await rm(dir, { recursive: true, force: true });
  }
}
