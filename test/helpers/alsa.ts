import { execFile } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alsaConfigPath, fileCapturePcm, filePlaybackPcm } from '../../drivers/audio/alsa-devices.ts';
import { FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE } from '../../drivers/audio/audio.ts';

/**
 * Real ALSA PCM devices without a sound card (FINDINGS "ALSA without a sound card"): a generated
 * asoundrc with `file`-plugin devices, loaded through ALSA_CONFIG_PATH by this process (set before
 * the first ALSA open) and by the aplay children it starts.
 * - `sweep_cap_file`: capture from a raw file, unpaced (slave `null`);
 * - `sweep_cap_paced`: capture from a FIFO a PacedWriter feeds in real time;
 * - `sweep_play`: playback into a raw file.
 */
export interface AlsaFixture {
  dir: string;
  configPath: string;
  captureFile: string;
  fifo: string;
  playbackFile: string;
  /** A writer pacing `pcm` (looped) into the FIFO at 48 kHz while a reader has it open. */
  pacer(pcm: Int16Array): PacedWriter;
  close(): Promise<void>;
}

export function hasAlsaTools(): Promise<boolean> {
  const run = (tool: string): Promise<boolean> => new Promise((r) => execFile(tool, ['--version'], (err) => r(!err)));
  return Promise.all([run('aplay'), run('arecord'), run('mkfifo')]).then((ok) => ok.every(Boolean));
}

export function hasAlsaCapture(): Promise<boolean> {
  return import('node:module').then(({ createRequire }) => {
    try {
      createRequire(import.meta.url)('alsa-capture');
      return true;
    } catch {
      return false;
    }
  });
}

/** A sine, peak `levelDbfs`, as raw samples. */
export function tone(hz: number, seconds: number, levelDbfs = -12): Int16Array {
  const amp = 32767 * 10 ** (levelDbfs / 20);
  return Int16Array.from({ length: Math.round(seconds * SAMPLE_RATE) }, (_, i) => Math.round(amp * Math.sin((2 * Math.PI * hz * i) / SAMPLE_RATE)));
}

export async function createAlsaFixture(captureTone: Int16Array = tone(440, 2)): Promise<AlsaFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-alsa-'));
  const captureFile = join(dir, 'capture.raw');
  const fifo = join(dir, 'capture.fifo');
  const playbackFile = join(dir, 'playback.raw');
  await writeFile(captureFile, Buffer.from(captureTone.buffer, captureTone.byteOffset, captureTone.byteLength));
  await new Promise<void>((resolve, reject) => execFile('mkfifo', [fifo], (err) => (err ? reject(new Error(err.message)) : resolve())));
  const configPath = join(dir, 'asoundrc');
  await writeFile(
    configPath,
    [fileCapturePcm('sweep_cap_file', captureFile), fileCapturePcm('sweep_cap_paced', fifo), filePlaybackPcm('sweep_play', playbackFile), ''].join('\n'),
  );
  process.env.ALSA_CONFIG_PATH = alsaConfigPath(configPath);
  const writers: PacedWriter[] = [];
  return {
    dir,
    configPath,
    captureFile,
    fifo,
    playbackFile,
    pacer(pcm) {
      const w = new PacedWriter(fifo, pcm);
      writers.push(w);
      return w;
    },
    async close() {
      for (const w of writers) w.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Reads a raw S16_LE file as samples. */
export async function readRaw(file: string): Promise<Int16Array> {
  const b = await readFile(file);
  return new Int16Array(b.buffer.slice(b.byteOffset, b.byteOffset + (b.byteLength & ~1)));
}

/**
 * Feeds a FIFO 20 ms of audio every 20 ms of real time, only while a reader has it open (an
 * O_NONBLOCK writer open fails with ENXIO otherwise), so nothing piles up between captures.
 */
export class PacedWriter {
  #fd: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #pos = 0;
  #start = performance.now();
  #n = 0;
  framesWritten = 0;
  /** Called after each frame is written, with its index into the looped input and the time. */
  onWrite: ((frameInLoop: number, at: number) => void) | undefined;
  readonly #bytes: Buffer;

  constructor(
    readonly fifo: string,
    pcm: Int16Array,
  ) {
    this.#bytes = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    this.#timer = setInterval(() => this.#tick(), 5);
  }

  #tick(): void {
    if (this.#fd === undefined) {
      try {
        this.#fd = openSync(this.fifo, constants.O_WRONLY | constants.O_NONBLOCK);
        this.#start = performance.now();
        this.#n = 0;
      } catch {
        return; // no reader yet
      }
    }
    const due = Math.floor((performance.now() - this.#start) / FRAME_MS) + 1;
    while (this.#n < due) {
      this.#n++;
      const frameInLoop = Math.floor(this.#pos / (FRAME_SAMPLES * 2));
      const frame = Buffer.alloc(FRAME_SAMPLES * 2);
      for (let at = 0; at < frame.length; ) {
        const n = Math.min(frame.length - at, this.#bytes.length - this.#pos);
        this.#bytes.copy(frame, at, this.#pos, this.#pos + n);
        at += n;
        this.#pos = (this.#pos + n) % this.#bytes.length;
      }
      try {
        writeSync(this.#fd, frame);
        this.framesWritten++;
        this.onWrite?.(frameInLoop, performance.now());
      } catch {
        // EPIPE: the reader went away; EAGAIN: it stalled. Start over at the next open.
        closeSync(this.#fd);
        this.#fd = undefined;
        return;
      }
    }
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}
