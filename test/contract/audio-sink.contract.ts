import type { Test } from 'tap';
import { FRAME_SAMPLES, type AudioSink } from '../../drivers/audio/audio.ts';

/**
 * The AudioSink contract (drivers/audio/audio.ts), for any driver. `make` returns a fresh sink;
 * the suite closes it.
 */
export function audioSinkContract(t: Test, name: string, make: () => Promise<AudioSink>): void {
  const fresh = async (t: Test): Promise<AudioSink> => {
    const s = await make();
    t.teardown(() => s.close());
    return s;
  };
  const frame = (): Int16Array => new Int16Array(FRAME_SAMPLES).map((_, i) => Math.round(4000 * Math.sin(i / 10)));

  void t.test(`${name}: format is 48 kHz mono 960-sample frames`, async (t) => {
    const s = await fresh(t);
    t.same({ ...s.format }, { sampleRate: 48_000, channels: 1, frameSamples: FRAME_SAMPLES });
  });

  void t.test(`${name}: write of a 960-sample frame resolves`, async (t) => {
    const s = await fresh(t);
    await t.resolves(s.write(frame()));
  });

  void t.test(`${name}: overlapping writes all resolve`, async (t) => {
    const s = await fresh(t);
    await t.resolves(Promise.all([s.write(frame()), s.write(frame()), s.write(frame())]));
  });

  void t.test(`${name}: write of a wrong-length frame rejects INVALID_MESSAGE naming the length`, async (t) => {
    const s = await fresh(t);
    await t.rejects(s.write(new Int16Array(480)), { name: 'SweepError', code: 'INVALID_MESSAGE', message: /480/ });
    await t.rejects(s.write(new Int16Array(0)), { code: 'INVALID_MESSAGE' });
  });

  void t.test(`${name}: write of a wrong-length frame does not throw synchronously`, async (t) => {
    const s = await fresh(t);
    let p: Promise<void> | undefined;
    t.doesNotThrow(() => {
      p = s.write(new Int16Array(1));
    });
    await t.rejects(p!);
  });

  void t.test(`${name}: close is idempotent and write afterwards rejects CLOSED`, async (t) => {
    const s = await make();
    await s.close();
    await t.resolves(s.close());
    await t.rejects(s.write(frame()), { name: 'SweepError', code: 'CLOSED' });
  });
}
