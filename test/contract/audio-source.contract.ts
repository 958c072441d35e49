import type { Test } from 'tap';
import { FRAME_SAMPLES, type AudioSource } from '../../drivers/audio/audio.ts';

/**
 * The AudioSource contract (drivers/audio/audio.ts), for any driver: the simulated one always,
 * ALSA where the machine has it. `make` returns a fresh, unstarted source; the suite closes it.
 */
export function audioSourceContract(t: Test, name: string, make: () => Promise<AudioSource>): void {
  const fresh = async (t: Test): Promise<AudioSource> => {
    const s = await make();
    t.teardown(() => s.close());
    return s;
  };
  const collect = (s: AudioSource): { pcm: Int16Array; at: number }[] => {
    const got: { pcm: Int16Array; at: number }[] = [];
    s.onFrame((pcm) => got.push({ pcm: pcm.slice(), at: performance.now() }));
    return got;
  };
  const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  void t.test(`${name}: format is 48 kHz mono 960-sample frames`, async (t) => {
    const s = await fresh(t);
    t.same({ ...s.format }, { sampleRate: 48_000, channels: 1, frameSamples: FRAME_SAMPLES });
  });

  void t.test(`${name}: start delivers 960-sample frames averaging 20 ms`, async (t) => {
    const s = await fresh(t);
    const got = collect(s);
    await s.start();
    await wait(1000);
    await s.stop();
    t.ok(got.length >= 45 && got.length <= 52, `${got.length} frames in 1 s`);
    t.ok(got.every((f) => f.pcm instanceof Int16Array && f.pcm.length === FRAME_SAMPLES), 'every frame 960 samples');
    const span = got.at(-1)!.at - got[0]!.at;
    const avg = span / (got.length - 1);
    t.ok(avg > 18 && avg < 22, `average interval ${avg.toFixed(2)} ms`);
  });

  void t.test(`${name}: start on a started source resolves without a second stream`, async (t) => {
    const s = await fresh(t);
    const got = collect(s);
    await s.start();
    await s.start();
    await wait(500);
    await s.stop();
    t.ok(got.length <= 27, `${got.length} frames in 500 ms`);
  });

  void t.test(`${name}: stop resolves after which no frame is delivered`, async (t) => {
    const s = await fresh(t);
    const got = collect(s);
    await s.start();
    await wait(100);
    await s.stop();
    const n = got.length;
    await wait(100);
    t.equal(got.length, n);
    await t.resolves(s.stop(), 'stopping a stopped source resolves');
  });

  void t.test(`${name}: start after stop delivers frames again`, async (t) => {
    const s = await fresh(t);
    const got = collect(s);
    await s.start();
    await wait(60);
    await s.stop();
    const n = got.length;
    await s.start();
    await wait(100);
    await s.stop();
    t.ok(got.length > n);
  });

  void t.test(`${name}: close is idempotent and start afterwards rejects CLOSED`, async (t) => {
    const s = await make();
    const got = collect(s);
    await s.start();
    await s.close();
    await t.resolves(s.close());
    const n = got.length;
    await t.rejects(s.start(), { name: 'SweepError', code: 'CLOSED' });
    await wait(60);
    t.equal(got.length, n, 'no frame after close');
  });
}
