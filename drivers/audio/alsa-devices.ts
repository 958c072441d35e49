import { execFile } from 'node:child_process';
import { SweepError } from '../../core/errors.ts';

/**
 * ALSA device names and configuration snippets. Pure string builders (tested without ALSA) plus
 * `listAlsaDevices`, which asks `aplay -L` / `arecord -L`.
 *
 * Nothing here writes a user's ~/.asoundrc: tests and the installer's tools write a generated file
 * and point ALSA at it with ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:FILE (the system file
 * first, or `null` and every `plug`/`hw` name are unknown).
 */

/** ALSA PCM names: `default`, `hw:1,0`, `plughw:CARD=Device,DEV=0`, `sweep_ec`, `dmix:…`. */
const PCM_NAME = /^[A-Za-z0-9_][A-Za-z0-9_:,=.-]*$/;

export function checkPcmName(name: string, what: string): string {
  if (!PCM_NAME.test(name) || name.length > 128) {
    throw new SweepError('INVALID_CONFIG', `${what}: "${name}" is not an ALSA PCM name (letters, digits, _ : , = . -; e.g. default, hw:1,0, plughw:CARD=Device)`);
  }
  return name;
}

function quote(s: string): string {
  if (/["\\\n]/.test(s)) throw new SweepError('INVALID_CONFIG', `"${s}" cannot appear in an ALSA config string (quote, backslash or newline)`);
  return `"${s}"`;
}

/** A capture PCM reading raw S16_LE 48 kHz mono from a file or FIFO (`infile`); the slave `null` supplies timing only. */
export function fileCapturePcm(name: string, infile: string): string {
  checkPcmName(name, 'capture device');
  return [
    `pcm.${name} {`,
    `  type file`,
    `  slave.pcm "null"`,
    `  file "/dev/null"`,
    `  infile ${quote(infile)}`,
    `  format "raw"`,
    `}`,
  ].join('\n');
}

/** A playback PCM writing what is played to a raw file (S16_LE as played). */
export function filePlaybackPcm(name: string, outfile: string): string {
  checkPcmName(name, 'playback device');
  return [`pcm.${name} {`, `  type file`, `  slave.pcm "null"`, `  file ${quote(outfile)}`, `  format "raw"`, `}`].join('\n');
}

export interface SpeexEchoCancelOptions {
  /** The PCM name to define (use it as audio.source.device). */
  name?: string;
  /** The capture device the microphone is on, e.g. `plughw:CARD=Device,DEV=0`. */
  slave: string;
  /** Frames per Speex block; 960 = one 20 ms frame at 48 kHz (the speex plugin's `frames`). */
  frames?: number;
  /** Echo tail in samples (filter_length); 4800 = 100 ms at 48 kHz. */
  filterLength?: number;
  denoise?: boolean;
  agc?: boolean;
}

/**
 * An echo-cancelling capture PCM through alsa-plugins' speex preprocessor (`type speex`, Debian
 * package libasound2-plugins). Use its name as `audio.source.device`. The speex plugin cancels the
 * echo of the playback it is told about only when capture and playback share the card's clock:
 * pick capture and playback on the same card. PipeWire/PulseAudio's echo-cancel module is the
 * alternative on systems that run a sound server (README "Echo cancellation").
 */
export function speexEchoCancelPcm(opts: SpeexEchoCancelOptions): string {
  const name = checkPcmName(opts.name ?? 'sweep_ec', 'echo-cancel device');
  checkPcmName(opts.slave, 'echo-cancel slave');
  const frames = opts.frames ?? 960;
  const filter = opts.filterLength ?? 4800;
  if (!Number.isInteger(frames) || frames < 64 || frames > 4096) throw new SweepError('INVALID_CONFIG', `speex frames ${frames} is not an integer 64-4096`);
  if (!Number.isInteger(filter) || filter < 256 || filter > 48_000) throw new SweepError('INVALID_CONFIG', `speex filterLength ${filter} is not an integer 256-48000`);
  return [
    `pcm.${name} {`,
    `  type speex`,
    `  slave.pcm ${quote(opts.slave)}`,
    `  frames ${frames}`,
    `  echo yes`,
    `  filter_length ${filter}`,
    `  denoise ${opts.denoise === false ? 'no' : 'yes'}`,
    `  agc ${opts.agc ? 'yes' : 'no'}`,
    `}`,
  ].join('\n');
}

/** The value for ALSA_CONFIG_PATH that loads the system configuration and then `file`. */
export function alsaConfigPath(file: string): string {
  return `/usr/share/alsa/alsa.conf:${file}`;
}

export interface AlsaDevice {
  name: string;
  description: string;
}

/** Parses `aplay -L` / `arecord -L`: a name at column 0, its description indented below. */
export function parseDeviceList(text: string): AlsaDevice[] {
  const out: AlsaDevice[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (!/^\s/.test(line)) out.push({ name: line.trim(), description: '' });
    else if (out.length) {
      const d = out[out.length - 1]!;
      d.description = d.description ? `${d.description} — ${line.trim()}` : line.trim();
    }
  }
  return out;
}

/** The playback or capture PCMs ALSA knows (`aplay -L` / `arecord -L`). Rejects NOT_FOUND without alsa-utils. */
export function listAlsaDevices(kind: 'playback' | 'capture', env: NodeJS.ProcessEnv = process.env): Promise<AlsaDevice[]> {
  const tool = kind === 'playback' ? 'aplay' : 'arecord';
  return new Promise((resolve, reject) => {
    execFile(tool, ['-L'], { env, timeout: 5000 }, (err, stdout) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new SweepError('NOT_FOUND', `${tool} is not installed (Debian package alsa-utils)`));
        return;
      }
      resolve(parseDeviceList(String(stdout)));
    });
  });
}

/** Whether `aplay` and `arecord` can be run here. */
export async function alsaToolsAvailable(): Promise<boolean> {
  try {
    await listAlsaDevices('playback');
    await listAlsaDevices('capture');
    return true;
  } catch {
    return false;
  }
}
