import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessServer } from '../server/access-server.ts';
import { hashPassword } from '../server/passwords.ts';
import { EndpointConfig, type EndpointConfigInput } from '../firmware-config/endpoint-config.ts';
import type { AudioSink, AudioSource } from '../drivers/audio/audio.ts';
import { FRAME_SAMPLES, SAMPLE_RATE } from '../drivers/audio/audio.ts';
import { dominantFrequency, rmsDbfsOf } from '../drivers/audio/simulated.ts';
import { Endpoint } from '../runtime/endpoint.ts';
import type { Logger } from '../platform/log.ts';
import { waitForEvent } from './story.ts';

/**
 * Two endpoints (a door intercom and a desk handset) on loopback with the audio drivers the
 * caller passes: the end-to-end ALSA test and the audio-path benchmark put real ALSA devices at
 * either end. `call()` rings the handset from the intercom and answers.
 */
export interface AudioCall {
  intercom: Endpoint;
  handset: Endpoint;
  call(): Promise<void>;
  close(): Promise<void>;
}

export interface AudioCallOptions {
  intercom: { source: AudioSource; sink: AudioSink };
  handset: { source: AudioSource; sink: AudioSink };
  log: Logger;
  jitter?: NonNullable<EndpointConfigInput['audio']>['jitter'];
}

export async function startAudioCall(opts: AudioCallOptions): Promise<AudioCall> {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-audio-call-'));
  const server = await AccessServer.start({ dataDir: join(dir, 'server'), host: '127.0.0.1', port: 0, log: opts.log });
  const endpoints: Endpoint[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(endpoints.map((e) => e.close()));
    await server.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const passwords: Record<string, string> = {};
    for (const [name, display] of [
      ['door', 'Front door'],
      ['alice', 'Alice'],
    ] as const) {
      passwords[name] = randomBytes(18).toString('base64url');
      await server.store.createAccount(name, display, await hashPassword(passwords[name]));
    }
    await server.store.addBuddies('alice', 'door');
    const start = (id: string, account: string, kind: 'intercom' | 'deskphone', audio: { source: AudioSource; sink: AudioSink }) =>
      Endpoint.start(
        EndpointConfig.parse({
          endpoint: { id, kind, label: id },
          access: { url: server.url, serverPublicKey: server.publicKeyRaw, username: account, password: passwords[account]! },
          stateDir: join(dir, id),
          ...(opts.jitter ? { audio: { source: { driver: 'simulated' }, sink: { driver: 'simulated' }, jitter: opts.jitter } } : {}),
        }),
        { ...audio, log: opts.log.child({ endpoint: id }) },
      );
    const intercom = await start('intercom', 'door', 'intercom', opts.intercom);
    endpoints.push(intercom);
    const handset = await start('handset', 'alice', 'deskphone', opts.handset);
    endpoints.push(handset);
    return {
      intercom,
      handset,
      async call() {
        const ringing = waitForEvent(handset, 'call.state', (e) => e.call.state === 'ringing', 10_000);
        await intercom.calls.placeCall('handset', { doorRights: false });
        await ringing;
        await handset.calls.answer();
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

export interface ToneAnalysis {
  /** Frames from the first to the last loud one. */
  frames: number;
  /** Median dominant frequency over loud frames, Hz. */
  frequencyHz: number | null;
  /** Median RMS over loud frames, dBFS. */
  levelDbfs: number;
  /** Frames quieter than `silenceDbfs` between the first and last loud frame. */
  dropoutFrames: number;
  /** The longest run of such frames. */
  longestDropoutFrames: number;
  /** Sample index of the first loud sample (the onset). */
  onsetSample: number;
}

/** Splits raw PCM into 20 ms frames and describes the tone in it (for comparing input with output). */
export function analyseTone(pcm: Int16Array, silenceDbfs = -40): ToneAnalysis {
  const n = Math.floor(pcm.length / FRAME_SAMPLES);
  const rms: number[] = [];
  for (let i = 0; i < n; i++) rms.push(rmsDbfsOf(pcm.subarray(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES)));
  const first = rms.findIndex((r) => r >= silenceDbfs);
  let last = -1;
  for (let i = n - 1; i >= 0; i--) if (rms[i]! >= silenceDbfs) {
    last = i;
    break;
  }
  if (first < 0) return { frames: 0, frequencyHz: null, levelDbfs: -Infinity, dropoutFrames: 0, longestDropoutFrames: 0, onsetSample: -1 };
  let drop = 0;
  let run = 0;
  let longest = 0;
  const loud: number[] = [];
  const hz: number[] = [];
  const candidates = Array.from({ length: 79 }, (_, i) => 100 + 50 * i);
  for (let i = first; i <= last; i++) {
    if (rms[i]! < silenceDbfs) {
      drop++;
      run++;
      longest = Math.max(longest, run);
    } else {
      run = 0;
      loud.push(rms[i]!);
      if (i % 5 === 0) hz.push(dominantFrequency(pcm.subarray(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES), candidates) ?? 0);
    }
  }
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  let onset = first * FRAME_SAMPLES;
  const threshold = 32768 * 10 ** (silenceDbfs / 20);
  while (onset < pcm.length && Math.abs(pcm[onset]!) < threshold) onset++;
  return { frames: last - first + 1, frequencyHz: hz.length ? med(hz) : null, levelDbfs: med(loud), dropoutFrames: drop, longestDropoutFrames: longest, onsetSample: onset };
}

export const samplesToMs = (samples: number): number => (samples / SAMPLE_RATE) * 1000;
