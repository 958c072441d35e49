import t from 'tap';
import { appendFile } from 'node:fs/promises';
import { filePlaybackPcm } from '../../drivers/audio/alsa-devices.ts';
import { AlsaSink } from '../../drivers/audio/alsa-sink.ts';
import { watchAudioDrivers } from '../../runtime/audio-drivers.ts';
import { SimulatedAnalysingSink } from '../../drivers/audio/simulated.ts';
import type { DriverStateEvent } from '../../core/session/events.ts';
import { AlsaSource, type AlsaSourceEvent, type CaptureHandle } from '../../drivers/audio/alsa-source.ts';
import { FRAME_SAMPLES } from '../../drivers/audio/audio.ts';
import { createAlsaFixture, hasAlsaCapture, hasAlsaTools, readRaw, tone } from '../helpers/alsa.ts';
import { audioSinkContract } from './audio-sink.contract.ts';
import { audioSourceContract } from './audio-source.contract.ts';

/**
 * The audio contracts against real ALSA PCMs (file-plugin devices from a generated asoundrc:
 * test/helpers/alsa.ts), plus what only hardware drivers do. Skips only when ALSA's tools or
 * alsa-capture are missing (CI installs them).
 */
const tools = await hasAlsaTools();
const capture = await hasAlsaCapture();
if (!tools || !capture) {
  void t.test('ALSA drivers', { skip: `ALSA not available here (${!tools ? 'aplay/arecord/mkfifo missing: apt install alsa-utils' : 'alsa-capture not built: apt install libasound2-dev, npm rebuild alsa-capture'})` }, () => undefined);
} else {
  const fx = await createAlsaFixture(tone(440, 2));
  const writer = fx.pacer(tone(440, 2));
  t.teardown(() => fx.close());

  audioSourceContract(t, 'AlsaSource (paced file plugin)', async () => new AlsaSource({ device: 'sweep_cap_paced' }));
  audioSinkContract(t, 'AlsaSink (file plugin)', () => AlsaSink.open({ device: 'sweep_play' }));

  void t.test('AlsaSource start on a paced device reports the negotiated rate and period', async (t) => {
    const s = new AlsaSource({ device: 'sweep_cap_paced', periodFrames: 480 });
    t.teardown(() => s.close());
    const events: AlsaSourceEvent[] = [];
    s.onEvent((e) => events.push(e));
    await s.start();
    t.match(events[0], { type: 'negotiated', device: 'sweep_cap_paced', rate: 48_000, periodFrames: 480, periodUs: 10_000 });
    t.match(s.stats(), { rate: 48_000, periodFrames: 480 });
    t.ok(writer.framesWritten >= 0);
  });

  void t.test('AlsaSource start on a file device delivers the file samples in order', async (t) => {
    const s = new AlsaSource({ device: 'sweep_cap_file' });
    t.teardown(() => s.close());
    const want = tone(440, 2);
    const got: Int16Array[] = [];
    s.onFrame((pcm) => {
      if (got.length < 20) got.push(pcm.slice());
    });
    await s.start();
    await new Promise((r) => setTimeout(r, 50));
    await s.stop();
    t.ok(got.length === 20, `${got.length} frames`);
    t.same(Array.from(got[3]!), Array.from(want.subarray(3 * FRAME_SAMPLES, 4 * FRAME_SAMPLES)), 'frame 3 is the file’s fourth 20 ms');
  });

  void t.test('AlsaSource start on an unknown device rejects NOT_FOUND naming the device', async (t) => {
    const s = new AlsaSource({ device: 'sweep_no_such_pcm' });
    t.teardown(() => s.close());
    await t.rejects(s.start(), { name: 'SweepError', code: 'NOT_FOUND', message: /sweep_no_such_pcm/ });
  });

  void t.test('AlsaSource with a bad device name throws INVALID_CONFIG naming it', async (t) => {
    t.throws(() => new AlsaSource({ device: 'hw:1 0; rm' }), { code: 'INVALID_CONFIG', message: /hw:1 0; rm/ });
  });

  void t.test('AlsaSink open on an unknown device rejects NOT_FOUND naming the device', async (t) => {
    await t.rejects(AlsaSink.open({ device: 'sweep_no_such_pcm' }), { name: 'SweepError', code: 'NOT_FOUND', message: /sweep_no_such_pcm/ });
  });

  void t.test('AlsaSink write of frames lands them in the device in order', async (t) => {
    const s = await AlsaSink.open({ device: 'sweep_play' });
    t.match(s.negotiated(), { rate: 48_000, periodFrames: 480, bufferFrames: 1440 });
    const pcm = tone(1000, 0.2);
    for (let i = 0; i < 10; i++) await s.write(pcm.subarray(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES));
    await s.close();
    const out = await readRaw(fx.playbackFile);
    t.same(Array.from(out.subarray(0, pcm.length)), Array.from(pcm));
  });

  void t.test('AlsaSink.openOrRetry on a missing device resolves, drops frames and plays once the device appears', async (t) => {
    const s = await AlsaSink.openOrRetry({ device: 'sweep_late', retryMs: 50, maxRetryMs: 100 });
    t.teardown(() => s.close());
    const types: string[] = [];
    const recovered = new Promise<void>((resolve) =>
      s.onEvent((e) => {
        types.push(e.type);
        if (e.type === 'recovered') resolve();
      }),
    );
    await s.write(new Int16Array(FRAME_SAMPLES));
    t.equal(s.stats().framesDropped, 1, 'frames dropped while the device is missing');
    // "Plug in" the device: define it in the asoundrc (each aplay start reads it afresh).
    await appendFile(fx.configPath, `${filePlaybackPcm('sweep_late', fx.playbackFile + '.late')}\n`);
    await recovered;
    t.ok(types.includes('recovered'));
    await s.write(new Int16Array(FRAME_SAMPLES));
    t.equal(s.stats().framesWritten, 1);
  });

  void t.test('AlsaSink when aplay dies emits error then recovers by restarting it', async (t) => {
    const s = await AlsaSink.open({ device: 'sweep_play', retryMs: 50 });
    t.teardown(() => s.close());
    const types: string[] = [];
    const recovered = new Promise<void>((resolve) =>
      s.onEvent((e) => {
        types.push(e.type);
        if (e.type === 'recovered') resolve();
      }),
    );
    process.kill(s.pid!, 'SIGKILL');
    await recovered;
    t.same(types.filter((x) => x !== 'negotiated'), ['error', 'recovered']);
    t.equal(s.stats().restarts, 1);
    await t.resolves(s.write(new Int16Array(FRAME_SAMPLES)));
    t.equal(s.stats().framesWritten, 1);
  });
}

/** A fake binding (serialport's MockBinding style) for failures no file device can produce. */
class FakeCapture implements CaptureHandle {
  static instances: FakeCapture[] = [];
  static failOpen = false;
  #fns = new Map<string, ((v: unknown) => void)[]>();
  closed = false;
  constructor() {
    FakeCapture.instances.push(this);
    setImmediate(() => {
      if (FakeCapture.failOpen) this.emit('error', new Error('Unable to open PCM device: No such device'));
      else this.emit('periodTime', '10000');
    });
  }
  on(event: string, fn: (v: unknown) => void): this {
    this.#fns.set(event, [...(this.#fns.get(event) ?? []), fn]);
    return this;
  }
  emit(event: string, v: unknown): void {
    for (const fn of this.#fns.get(event) ?? []) fn(v);
  }
  close(): void {
    this.closed = true;
    setImmediate(() => this.emit('close', undefined));
  }
}

void t.test('AlsaSource after a read error emits error, retries and recovers without a crash', async (t) => {
  FakeCapture.instances = [];
  FakeCapture.failOpen = false;
  const s = new AlsaSource({ device: 'hw:1,0', binding: FakeCapture, retryMs: 10 });
  t.teardown(() => s.close());
  const events: AlsaSourceEvent[] = [];
  s.onEvent((e) => events.push(e));
  let frames = 0;
  s.onFrame(() => frames++);
  await s.start();
  const first = FakeCapture.instances[0]!;
  first.emit('audio', new Uint8Array(FRAME_SAMPLES * 2));
  t.equal(frames, 1);
  FakeCapture.failOpen = true;
  first.emit('readError', 'No such device');
  first.emit('audio', new Uint8Array(FRAME_SAMPLES * 2)); // the binding's stale buffer after the error
  t.equal(frames, 1, 'the stale buffer after a read error is not delivered');
  t.ok(first.closed, 'the failed device is released');
  await new Promise((r) => setTimeout(r, 60));
  t.ok(FakeCapture.instances.length >= 2, 'reopen attempts');
  FakeCapture.failOpen = false;
  await new Promise((r) => setTimeout(r, 300));
  t.match(events.map((e) => e.type), ['negotiated', 'error', 'error']);
  t.equal(events.at(-1)!.type, 'recovered');
  t.match(events[1], { type: 'error', device: 'hw:1,0', message: /hw:1,0.*No such device/ });
  FakeCapture.instances.at(-1)!.emit('audio', new Uint8Array(FRAME_SAMPLES * 2));
  t.equal(frames, 2, 'frames flow again');
  t.equal(s.stats().readErrors, 1);
});

void t.test('AlsaSource after an overrun counts the xrun and drops the stale period', async (t) => {
  FakeCapture.instances = [];
  FakeCapture.failOpen = false;
  const s = new AlsaSource({ device: 'default', binding: FakeCapture });
  t.teardown(() => s.close());
  let frames = 0;
  s.onFrame(() => frames++);
  await s.start();
  const cap = FakeCapture.instances[0]!;
  cap.emit('audio', new Uint8Array(960)); // half a frame
  cap.emit('overrun', 'overrun occurred');
  cap.emit('audio', new Uint8Array(960)); // stale
  t.equal(frames, 0);
  cap.emit('audio', new Uint8Array(960));
  t.equal(frames, 1, 'periods are assembled into 960-sample frames');
  cap.emit('shortRead', '100');
  cap.emit('audio', new Uint8Array(960)); // only 100 frames valid
  cap.emit('audio', new Uint8Array(1720));
  t.equal(frames, 2);
  t.match(s.stats(), { xruns: 1, shortReads: 1 });
});

void t.test('AlsaSource with keepTrying on a missing device starts, reports the failure and recovers when it appears', async (t) => {
  FakeCapture.instances = [];
  FakeCapture.failOpen = true;
  const s = new AlsaSource({ device: 'plughw:CARD=Device,DEV=0', binding: FakeCapture, retryMs: 10, keepTrying: true });
  t.teardown(() => s.close());
  const bus: DriverStateEvent[] = [];
  watchAudioDrivers(s, new SimulatedAnalysingSink(), (e) => bus.push(e));
  await t.resolves(s.start(), 'start resolves without the device');
  t.match(bus[0], { driver: 'audio.source', device: 'plughw:CARD=Device,DEV=0', state: 'failed', message: /plughw:CARD=Device,DEV=0.*No such device/ });
  FakeCapture.failOpen = false;
  await new Promise((r) => setTimeout(r, 100));
  t.match(bus.at(-1), { driver: 'audio.source', state: 'recovered' });
  let frames = 0;
  s.onFrame(() => frames++);
  FakeCapture.instances.at(-1)!.emit('audio', new Uint8Array(FRAME_SAMPLES * 2));
  t.equal(frames, 1);
});
