import { PanelEmulator } from '../drivers/buttons/panel-emulator.ts';
import { PanelConfig } from '../firmware-config/panel-config.ts';
import { World, LAB_CAST } from '../lab/world.ts';
import { intercomCallsHandset, waitForEvent, waitForWarmLinks, waitReadyForSweep } from '../lab/story.ts';
import { startPanel } from '../runtime/panel/panel-controller.ts';
import { createLogger } from '../platform/log.ts';
import { SocatPair } from '../test/helpers/socat.ts';
import { percentile, round } from './stats.ts';

/**
 * The handset's sweep button, end to end: a button line written on the wire of a socat pty pair
 * (the serial panel driver on the other end) to the first far-end audio frame at the phone. Each
 * press pushes the call to the phone; a second press on the handset takes it back (a pull, not
 * counted in p50/p95, reported as pullBack). `n` presses each way.
 */
export async function run(opts: { n?: number } = {}): Promise<Record<string, unknown>> {
  const n = opts.n ?? 50;
  const endpoints = LAB_CAST.endpoints.map((e) => (e.account === 'alice' ? { ...e, invites: 'auto' as const } : e));
  const log = createLogger({ level: 'silent' });
  const world = await World.start({ ...LAB_CAST, endpoints, log, sweepTimeoutMs: 3000 });
  const pair = await SocatPair.create();
  let wire: PanelEmulator | undefined;
  let panel: Awaited<ReturnType<typeof startPanel>> | undefined;
  try {
    wire = await PanelEmulator.open(pair.b);
    panel = await startPanel(
      world.get('handset').endpoint,
      PanelConfig.parse({ device: { driver: 'serial', path: pair.a }, buttons: [{ button: 'sweep', action: 'sweep' }], pushTo: ['phone'] }),
      { log },
    );
    await waitForWarmLinks(world, [['handset', 'phone']]);
    await intercomCallsHandset(world);
    await waitForWarmLinks(world, [['phone', 'intercom']]);
    const ready = (holder: string, other: string) => waitReadyForSweep(world, holder, other);
    /** Presses the sweep button; ms from the line on the wire to the newcomer's first far-end audio. */
    const press = async (newcomer: string): Promise<number> => {
      const done = waitForEvent(world.get(newcomer).endpoint, 'sweep.finished', (e) => e.role === 'newcomer', 10_000);
      const writtenAt = await wire!.press('sweep', 'down');
      const f = await done;
      if (f.outcome !== 'completed') throw new Error(`sweep to ${newcomer} ${f.outcome}: ${f.reason ?? ''}`);
      const audio = f.timeline.find((s) => s.step === 'firstFarEndAudio');
      if (!audio) throw new Error('no firstFarEndAudio step');
      return f.startedAtMono + audio.ms - writtenAt;
    };
    await ready('handset', 'phone');
    const pushes: number[] = [];
    const pulls: number[] = [];
    for (let i = 0; i < n; i++) {
      pushes.push(await press('phone'));
      await ready('phone', 'handset');
      pulls.push(await press('handset'));
      await ready('handset', 'phone');
    }
    return {
      n,
      p50Ms: round(percentile(pushes, 0.5)),
      p95Ms: round(percentile(pushes, 0.95)),
      pullBackP50Ms: round(percentile(pulls, 0.5)),
      pullBackP95Ms: round(percentile(pulls, 0.95)),
      droppedLines: panel.panel.counters.badChecksum + panel.panel.counters.malformed,
    };
  } finally {
    await panel?.close();
    await wire?.close();
    await pair.close();
    await world.close();
  }
}
