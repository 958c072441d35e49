import { execFile } from 'node:child_process';
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
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
 * - `sweep_play`: playback into a raw file, unpaced (what is written lands at once);
 * - `sweep_play_paced`, `sweep_play_paced_b`: playback into FIFOs a PacedReader drains in real
 *   time, so a player that writes as fast as the device takes (baresip's alsa module) is paced
 *   as by a sound card.
 */
export interface AlsaFixture {
  dir: string;
  configPath: string;
  captureFile: string;
  fifo: string;
  playbackFile: string;
  /** A writer pacing `pcm` (looped) into the FIFO at 48 kHz while a reader has it open. */
  pacer(pcm: Int16Array): PacedWriter;
  /** A reader draining a paced playback device's FIFO at 48 kHz. */
  drain(device: 'sweep_play_paced' | 'sweep_play_paced_b'): PacedReader;
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
  const playFifos = { sweep_play_paced: join(dir, 'play-a.fifo'), sweep_play_paced_b: join(dir, 'play-b.fifo') };
  const fifos = [fifo, ...Object.values(playFifos)];
  await new Promise<void>((resolve, reject) => execFile('mkfifo', fifos, (err) => (err ? reject(new Error(err.message)) : resolve())));
  const configPath = join(dir, 'asoundrc');
  await writeFile(
    configPath,
    [
      fileCapturePcm('sweep_cap_file', captureFile),
      fileCapturePcm('sweep_cap_paced', fifo),
      filePlaybackPcm('sweep_play', playbackFile),
      ...Object.entries(playFifos).map(([name, f]) => filePlaybackPcm(name, f)),
      '',
    ].join('\n'),
  );
  process.env.ALSA_CONFIG_PATH = alsaConfigPath(configPath);
  const writers: { close(): void }[] = [];
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
    drain(device) {
      const r = new PacedReader(playFifos[device]);
      writers.push(r);
      return r;
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
 * A FIFO end serviced every 5 ms of real time: opened non-blocking (retried each tick until the
 * other end is there), then `transfer` moves what is due. `close()` stops the timer and the fd.
 */
abstract class PacedFifo {
  #fd: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #flags: number;

  constructor(
    readonly fifo: string,
    flags: number,
  ) {
    this.#flags = flags;
    this.#timer = setInterval(() => this.#tick(), 5);
  }

  /** Called once the FIFO is open, before the first transfer. */
  protected abstract opened(): void;
  /** Moves what is due through `fd`; returns false if the other end went away (reopen later). */
  protected abstract transfer(fd: number): boolean;

  #tick(): void {
    if (this.#fd === undefined) {
      try {
        this.#fd = openSync(this.fifo, this.#flags | constants.O_NONBLOCK);
      } catch {
        return; // the other end is not there yet
      }
      this.opened();
    }
    if (!this.transfer(this.#fd)) {
      closeSync(this.#fd);
      this.#fd = undefined;
    }
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/**
 * Feeds a FIFO 20 ms of audio every 20 ms of real time, only while a reader has it open (an
 * O_NONBLOCK writer open fails with ENXIO otherwise), so nothing piles up between captures.
 */
export class PacedWriter extends PacedFifo {
  #pos = 0;
  #start = performance.now();
  #n = 0;
  framesWritten = 0;
  /** Called after each frame is written, with its index into the looped input and the time. */
  onWrite: ((frameInLoop: number, at: number) => void) | undefined;
  readonly #bytes: Buffer;

  constructor(fifo: string, pcm: Int16Array) {
    super(fifo, constants.O_WRONLY);
    this.#bytes = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  }

  protected opened(): void {
    this.#start = performance.now();
    this.#n = 0;
  }

  protected transfer(fd: number): boolean {
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
        writeSync(fd, frame);
        this.framesWritten++;
        this.onWrite?.(frameInLoop, performance.now());
      } catch {
        return false; // EPIPE: the reader went away; EAGAIN: it stalled. Start over at the next open.
      }
    }
    return true;
  }
}

/**
 * Drains a FIFO at 48 kHz mono S16 in real time (a sound card's pace): reads only what is due, so
 * a writer faster than real time blocks once the FIFO is full. Counts loud 20 ms frames, so a
 * caller can tell that audio, not silence, was played.
 */
export class PacedReader extends PacedFifo {
  #start = 0;
  #bytes = 0;
  readonly #buf = Buffer.alloc(1 << 16);
  /** Bytes read so far, and frames whose peak exceeded -30 dBFS. */
  bytesRead = 0;
  loudFrames = 0;
  /** Called with the read's time when a sample above -24 dBFS follows 100 ms with none. */
  onOnset: ((at: number) => void) | undefined;
  #frameBytes = 0;
  #framePeak = 0;
  #quietSamples = 0;

  constructor(fifo: string) {
    // Non-blocking, so opening never waits for a writer; a read before one opens returns 0.
    super(fifo, constants.O_RDONLY);
  }

  protected opened(): void {
    this.#bytes = 0;
  }

  protected transfer(fd: number): boolean {
    // The clock starts with the first bytes: a writer that opens late gets no backlog drained at once.
    if (this.#bytes === 0) this.#start = performance.now() - FRAME_MS;
    const due = Math.floor(((performance.now() - this.#start) / 1000) * SAMPLE_RATE) * 2 - this.#bytes;
    if (due < 2) return true;
    let n = 0;
    try {
      n = readSync(fd, this.#buf, 0, Math.min(due & ~1, this.#buf.length), null);
    } catch {
      return true; // EAGAIN: nothing written yet
    }
    this.#bytes += n;
    this.bytesRead += n;
    const at = performance.now();
    for (let i = 0; i + 1 < n; i += 2) {
      const v = Math.abs(this.#buf.readInt16LE(i));
      if (v > 2000) {
        if (this.#quietSamples >= SAMPLE_RATE / 10) this.onOnset?.(at);
        this.#quietSamples = 0;
      } else this.#quietSamples++;
      this.#framePeak = Math.max(this.#framePeak, v);
      this.#frameBytes += 2;
      if (this.#frameBytes === FRAME_SAMPLES * 2) {
        if (this.#framePeak > 1036) this.loudFrames++;
        this.#frameBytes = 0;
        this.#framePeak = 0;
      }
    }
    return true;
  }
}
