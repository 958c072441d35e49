import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { FRAME_SAMPLES, SAMPLE_RATE } from '../drivers/audio/audio.ts';
import { listAlsaDevices } from '../drivers/audio/alsa-devices.ts';
import { AlsaSink } from '../drivers/audio/alsa-sink.ts';
import { AlsaSource } from '../drivers/audio/alsa-source.ts';
import { dominantFrequency, rmsDbfsOf } from '../drivers/audio/simulated.ts';
import { SweepError, toSweepError } from '../core/errors.ts';

/**
 * `sweep audio test`: what an installer runs on the device when "the intercom can't hear me".
 * Lists ALSA devices, plays a tone on the playback device, records from the capture device and
 * reports levels (peak, RMS, dominant frequency) with a verdict per check.
 */
export const AUDIO_USAGE = `usage: sweep audio <list|test> [options]
  list                      ALSA playback and capture devices (aplay -L, arecord -L)
  test [--playback DEV] [--capture DEV] [--seconds 3] [--tone-hz 1000] [--no-play] [--no-record]
                            play a tone, record a few seconds, report levels`;

export interface AudioCliIo {
  stdout: Writable;
  stderr: Writable;
}

export async function audioCli(argv: string[], io: AudioCliIo): Promise<number> {
  const [sub, ...rest] = argv;
  const say = (s: string): void => void io.stdout.write(`${s}\n`);
  try {
    if (sub === 'list') {
      for (const kind of ['playback', 'capture'] as const) {
        const devices = await listAlsaDevices(kind);
        say(`${kind} devices (${devices.length}):`);
        for (const d of devices) say(`  ${d.name.padEnd(40)} ${d.description}`);
      }
      return 0;
    }
    if (sub !== 'test') {
      io.stderr.write(`${AUDIO_USAGE}\n`);
      return sub === undefined || sub === '--help' ? 0 : 2;
    }
    const { values } = parseArgs({
      args: rest,
      options: {
        playback: { type: 'string', default: 'default' },
        capture: { type: 'string', default: 'default' },
        seconds: { type: 'string', default: '3' },
        'tone-hz': { type: 'string', default: '1000' },
        'no-play': { type: 'boolean', default: false },
        'no-record': { type: 'boolean', default: false },
      },
      strict: true,
    });
    const seconds = Number(values.seconds);
    if (!(seconds > 0 && seconds <= 30)) throw new SweepError('INVALID_CONFIG', `--seconds: ${values.seconds} is not a number of seconds 0-30`);
    const hz = Number(values['tone-hz']);
    if (!(hz >= 50 && hz <= 8000)) throw new SweepError('INVALID_CONFIG', `--tone-hz: ${values['tone-hz']} is not a frequency 50-8000`);
    let ok = true;
    // Recording runs while the tone plays: a loopback (speaker next to microphone) shows up as the tone.
    const recording = values['no-record'] ? undefined : record(values.capture, seconds);
    if (!values['no-play']) {
      try {
        const played = await playTone(values.playback, hz, Math.min(seconds, 2));
        say(`playback ${values.playback}: OK, ${played.frames} frames of ${hz} Hz at -12 dBFS (rate ${played.rate}, period ${played.periodFrames}, buffer ${played.bufferFrames} frames), ${played.xruns} underruns`);
      } catch (err) {
        ok = false;
        say(`playback ${values.playback}: FAILED — ${toSweepError(err).message}`);
      }
    }
    if (recording) {
      try {
        const r = await recording;
        const verdict = r.peakDbfs < -60 ? 'SILENT (microphone muted, wrong device or gain at 0? check alsamixer)' : r.peakDbfs > -1 ? 'CLIPPING (lower the capture gain in alsamixer)' : 'OK';
        if (r.peakDbfs < -60) ok = false;
        say(
          `capture ${values.capture}: ${verdict}, ${r.frames} frames, peak ${r.peakDbfs.toFixed(1)} dBFS, RMS ${r.rmsDbfs.toFixed(1)} dBFS` +
            `${r.hz ? `, dominant ${Math.round(r.hz)} Hz` : ''} (rate ${r.rate}, period ${r.periodFrames} frames), ${r.xruns} overruns`,
        );
      } catch (err) {
        ok = false;
        say(`capture ${values.capture}: FAILED — ${toSweepError(err).message}`);
      }
    }
    return ok ? 0 : 1;
  } catch (err) {
    io.stderr.write(`sweep audio: ${toSweepError(err).message}\n`);
    return 2;
  }
}

async function playTone(device: string, hz: number, seconds: number) {
  const sink = await AlsaSink.open({ device });
  try {
    const frames = Math.round((seconds * 1000) / 20);
    const amp = 32767 * 10 ** (-12 / 20);
    const pcm = new Int16Array(FRAME_SAMPLES);
    const t0 = performance.now();
    for (let f = 0; f < frames; f++) {
      for (let i = 0; i < FRAME_SAMPLES; i++) pcm[i] = Math.round(amp * Math.sin((2 * Math.PI * hz * (f * FRAME_SAMPLES + i)) / SAMPLE_RATE));
      await sink.write(pcm);
      // Pace at real time so the device's buffer stays small.
      const wait = t0 + (f + 1) * 20 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const n = sink.negotiated();
    return { frames, rate: n?.rate ?? 0, periodFrames: n?.periodFrames ?? 0, bufferFrames: n?.bufferFrames ?? 0, xruns: sink.stats().xruns };
  } finally {
    await sink.close();
  }
}

async function record(device: string, seconds: number) {
  const src = new AlsaSource({ device });
  let peak = 0;
  let sum = 0;
  let n = 0;
  let frames = 0;
  const keep = new Int16Array(FRAME_SAMPLES);
  let loudest = -Infinity;
  src.onFrame((pcm) => {
    frames++;
    for (let i = 0; i < pcm.length; i++) {
      const v = Math.abs(pcm[i]!);
      if (v > peak) peak = v;
      sum += v * v;
    }
    n += pcm.length;
    const level = rmsDbfsOf(pcm);
    if (level > loudest) {
      loudest = level;
      keep.set(pcm);
    }
  });
  try {
    await src.start();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    await src.stop();
  } finally {
    await src.close();
  }
  const st = src.stats();
  const toDb = (x: number): number => (x === 0 ? -Infinity : 20 * Math.log10(x / 32768));
  return {
    frames,
    peakDbfs: toDb(peak),
    rmsDbfs: toDb(Math.sqrt(sum / Math.max(1, n))),
    hz: loudest > -60 ? dominantFrequency(keep, Array.from({ length: 79 }, (_, i) => 100 + 50 * i)) : null,
    rate: st.rate ?? 0,
    periodFrames: st.periodFrames ?? 0,
    xruns: st.xruns,
  };
}
