import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AlsaSink } from '../drivers/audio/alsa-sink.ts';
import { AlsaSource } from '../drivers/audio/alsa-source.ts';
import { FRAME_SAMPLES, SAMPLE_RATE, type AudioSink, type AudioSource } from '../drivers/audio/audio.ts';
import { SimulatedAnalysingSink, SimulatedToneSource, rmsDbfsOf } from '../drivers/audio/simulated.ts';
import { analyseTone, startAudioCall } from '../lab/audio-call.ts';
import { createLogger } from '../platform/log.ts';
import { createAlsaFixture, readRaw, tone } from '../test/helpers/alsa.ts';
import { measureChildCall } from './child-call.ts';
import { cpuMsOf, rssMbOf } from './proc.ts';
import { round } from './stats.ts';

/**
 * The audio path through real ALSA devices (file plugin, FINDINGS "ALSA without a sound card"):
 * a paced capture device feeds the intercom, the handset plays into an aplay-driven playback
 * device.
 *
 * - cpuMsPerCallSecond, rssMb: one endpoint alone in its own process (the bundle), capturing from
 *   and playing to ALSA devices, aplay included, in its second call (measureEndpointCpu; the
 *   first is firstCallCpuMsPerCallSecond). Measured in the same run:
 *   two baresip 1.0 instances calling each other with Opus on loopback; the one that captures and
 *   plays through the same kind of ALSA devices is the reference (measureBaresipAlsa).
 * - mouthToEarMs: a tone onset written into the capture FIFO until it leaves a playback device
 *   drained at a sound card's pace (measureLatency): capture, Opus, link, jitter buffer, aplay and
 *   the ALSA buffer, all observed.
 * - addedPlaybackLatencyMs: what the playback path adds, observed the same way: the handset's
 *   sink.write() of the onset frame until it leaves the paced device.
 * - loss: 5% and 20% random loss injected on the handset's receive side; longest output dropout
 *   (frames below -40 dBFS inside the tone) and the share of frames concealed.
 */
export async function run(opts: { seconds?: number } = {}): Promise<Record<string, unknown>> {
  const seconds = opts.seconds ?? 10;
  const cpu = await measureEndpointCpu(seconds);
  const ours = await measureLatency(seconds);
  const loss5 = await measureLoss(5, 0.05);
  const loss20 = await measureLoss(5, 0.2);
  const baresip = await measureBaresipAlsa(seconds).catch((err: unknown) => ({ error: (err as Error).message }));
  const bCpu = 'cpuMsPerCallSecond' in baresip ? baresip.cpuMsPerCallSecond : undefined;
  return {
    seconds,
    mouthToEarMs: ours.mouthToEarMs,
    jitterBufferMs: ours.jitterBufferMs,
    addedPlaybackLatencyMs: ours.addedPlaybackLatencyMs,
    playbackBufferMs: ours.playbackBufferMs,
    latencyOnsets: ours.onsets,
    cpuMsPerCallSecond: cpu.cpuMsPerCallSecond,
    firstCallCpuMsPerCallSecond: cpu.firstCallCpuMsPerCallSecond,
    referenceWakeUs: cpu.referenceWakeUs,
    rssMb: cpu.rssMb,
    baresipCpuMsPerCallSecond: bCpu ?? null,
    baresipRssMb: 'rssMb' in baresip ? baresip.rssMb : null,
    baresipFileAudioCpuMsPerCallSecond: 'fileCpuMsPerCallSecond' in baresip ? baresip.fileCpuMsPerCallSecond : null,
    cpuRatio: bCpu ? round(cpu.cpuMsPerCallSecond / bCpu, 2) : null,
    cpuHeardHz: cpu.heardHz,
    cpuLoudFramesPlayed: cpu.loudFramesPlayed,
    threads: cpu.threads,
    children: cpu.children,
    ...('error' in baresip ? { baresipError: baresip.error } : {}),
    loss5,
    loss20,
  };
}

/**
 * CPU and RSS of one endpoint as a device runs it, through ALSA both ways: the intercom from the
 * bundle in its own process, capturing a 1000 Hz tone from the paced file-plugin device and
 * playing through aplay into a paced playback device, as baresip does in measureBaresipAlsa; the
 * aplay child's CPU and RSS count as ours.
 */
async function measureEndpointCpu(seconds: number) {
  const input = tone(1000, 2, -12);
  const fx = await createAlsaFixture(input);
  const pacer = fx.pacer(input);
  const heard = fx.drain('sweep_play_paced');
  try {
    const r = await measureChildCall({
      seconds,
      audio: {
        source: { driver: 'alsa', device: 'sweep_cap_paced' },
        sink: { driver: 'alsa', device: 'sweep_play_paced' },
      },
    });
    return { ...r, loudFramesPlayed: heard.loudFrames };
  } finally {
    pacer.close();
    heard.close();
    await fx.close();
  }
}

/**
 * Latency, observed: the intercom captures from the paced device (one second of silence, one of
 * tone, looped); the handset plays through aplay into a playback device drained at the sound
 * card's pace, so what aplay and ALSA buffer shows up as delay. Each tone onset is timed from its
 * write into the capture FIFO (mouth) and from the handset's sink.write() to its arrival at the
 * drained end (ear).
 */
async function measureLatency(seconds: number) {
  const input = new Int16Array(2 * SAMPLE_RATE);
  input.set(tone(1000, 1, -12), SAMPLE_RATE);
  const fx = await createAlsaFixture(input);
  const pacer = fx.pacer(input);
  const onsetFrame = SAMPLE_RATE / FRAME_SAMPLES;
  const mouths: number[] = [];
  pacer.onWrite = (i, at) => {
    if (i === onsetFrame) mouths.push(at);
  };
  const ears: number[] = [];
  const drained = fx.drain('sweep_play_paced');
  drained.onOnset = (at) => ears.push(at);
  const capture = new AlsaSource({ device: 'sweep_cap_paced' });
  const playback = await AlsaSink.open({ device: 'sweep_play_paced' });
  const writes: number[] = [];
  let loud = false;
  const timedSink: AudioSink = {
    format: playback.format,
    write(pcm) {
      const now = rmsDbfsOf(pcm) > -30;
      if (now && !loud) writes.push(performance.now());
      loud = now;
      return playback.write(pcm);
    },
    close: () => playback.close(),
  };
  const call = await callIntoHandset(capture, timedSink);
  let jitterDepth = 0;
  let jitterSamples = 0;
  try {
    await call.call();
    const sampler = setInterval(() => {
      const js = call.handset.media.jitterStats();
      if (js) {
        jitterDepth += js.depthMs;
        jitterSamples++;
      }
    }, 7);
    await new Promise((r) => setTimeout(r, 1500 + seconds * 1000));
    clearInterval(sampler);
    await call.intercom.calls.hangup();
    const n = playback.negotiated();
    return {
      mouthToEarMs: medianDelay(ears, mouths),
      jitterBufferMs: round(jitterDepth / Math.max(1, jitterSamples), 1),
      addedPlaybackLatencyMs: medianDelay(ears, writes),
      playbackBufferMs: n ? round((n.bufferFrames / SAMPLE_RATE) * 1000, 1) : null,
      onsets: ears.length,
    };
  } finally {
    await call.close();
    await capture.close();
    await playback.close();
    pacer.close();
    drained.close();
    await fx.close();
  }
}

/** An in-process call: the intercom captures from `capture`; the silent handset plays into `sink`. */
function callIntoHandset(capture: AudioSource, sink: AudioSink) {
  const quiet = new SimulatedToneSource({ frequencyHz: 300 });
  quiet.silent = true;
  return startAudioCall({ intercom: { source: capture, sink: new SimulatedAnalysingSink() }, handset: { source: quiet, sink }, log: createLogger({ level: 'silent' }) });
}

/** Median of (each arrival − the latest cause before it), ms; null if none pair up. */
function medianDelay(arrivals: number[], causes: number[]): number | null {
  const d = arrivals
    .map((a) => a - Math.max(...causes.filter((c) => c < a)))
    .filter((x) => Number.isFinite(x) && x >= 0 && x < 1000)
    .sort((a, b) => a - b);
  return d.length ? round(d[Math.floor(d.length / 2)]!, 1) : null;
}

/**
 * Loss: a steady 1000 Hz tone, `loss` of the handset's received packets dropped at random; the
 * handset plays into a file device, which is then scanned for dropouts (frames below -40 dBFS).
 */
async function measureLoss(seconds: number, loss: number) {
  const input = tone(1000, 2, -12);
  const fx = await createAlsaFixture(input);
  const pacer = fx.pacer(input);
  const capture = new AlsaSource({ device: 'sweep_cap_paced' });
  const playback = await AlsaSink.open({ device: 'sweep_play' });
  const call = await callIntoHandset(capture, playback);
  try {
    call.handset.media.setReceiveLoss(loss);
    await call.call();
    await new Promise((r) => setTimeout(r, 1500 + seconds * 1000));
    await call.intercom.calls.hangup();
    const st = call.handset.media.stats();
    await playback.close();
    const out = analyseTone(await readRaw(fx.playbackFile));
    return {
      longestGapFrames: out.longestDropoutFrames,
      concealedPct: round((100 * st.framesConcealed) / Math.max(1, st.framesConcealed + st.framesDecoded), 1),
      frequencyHz: out.frequencyHz,
    };
  } finally {
    await call.close();
    await capture.close();
    await playback.close();
    pacer.close();
    await fx.close();
  }
}

type BaresipFigures = { cpuMsPerCallSecond: number; rssMb: number; fileCpuMsPerCallSecond: number };

/**
 * Two baresip instances calling each other with Opus on loopback, each playing through its alsa
 * module into a paced FIFO device (a sound card's pace: the `null`-backed file device would let
 * its player thread spin). Instance a captures from the paced ALSA capture device, as our
 * endpoint does in measureEndpointCpu; b from a WAV file (aufile). Returns a's figures, and b's
 * CPU as `fileCpuMsPerCallSecond`. Both must hear the other's tone, or the call did not run.
 */
async function measureBaresipAlsa(seconds: number): Promise<BaresipFigures> {
  const input = tone(1000, 2, -12);
  const fx = await createAlsaFixture(input);
  const pacer = fx.pacer(input);
  const heardByA = fx.drain('sweep_play_paced');
  const heardByB = fx.drain('sweep_play_paced_b');
  try {
    const r = await measureBaresip(seconds);
    if (heardByA.loudFrames < 25 || heardByB.loudFrames < 25) {
      throw new Error(`baresip call carried no audio: a played ${heardByA.loudFrames} loud frames, b ${heardByB.loudFrames}`);
    }
    return r;
  } finally {
    pacer.close();
    heardByA.close();
    heardByB.close();
    await fx.close();
  }
}

async function measureBaresip(seconds: number): Promise<BaresipFigures> {
  // The reference is optional: without it the figures say why, and the other benchmarks still run.
  if (spawnSync('baresip', ['-h'], { stdio: 'ignore' }).error) throw new Error('baresip is not installed (apt-get install baresip)');
  const dir = await mkdtemp(join(tmpdir(), 'sweep-baresip-'));
  const procs: ChildProcess[] = [];
  try {
    const wav = join(dir, 'tone.wav');
    const pcm = tone(440, seconds + 10, -12);
    const header = Buffer.alloc(44);
    header.write('RIFF', 0);
    header.writeUInt32LE(36 + pcm.byteLength, 4);
    header.write('WAVEfmt ', 8);
    header.writeUInt32LE(16, 16);
    header.writeUInt16LE(1, 20);
    header.writeUInt16LE(1, 22);
    header.writeUInt32LE(SAMPLE_RATE, 24);
    header.writeUInt32LE(SAMPLE_RATE * 2, 28);
    header.writeUInt16LE(2, 32);
    header.writeUInt16LE(16, 34);
    header.write('data', 36);
    header.writeUInt32LE(pcm.byteLength, 40);
    await writeFile(wav, Buffer.concat([header, Buffer.from(pcm.buffer)]));
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    const mk = async (name: string, sipPort: number, rtp: number, audio: { source: string; player: string }): Promise<string> => {
      const d = join(dir, name);
      await mkdir(d);
      await writeFile(
        join(d, 'config'),
        [
          'poll_method epoll',
          `sip_listen 127.0.0.1:${sipPort}`,
          'net_interface 127.0.0.1',
          'module_path /usr/lib/baresip/modules',
          'module opus.so',
          'module aufile.so',
          'module alsa.so',
          'module_app account.so',
          'module_app menu.so',
          `audio_source ${audio.source}`,
          `audio_player ${audio.player}`,
          'opus_bitrate 28000',
          'opus_stereo no',
          'opus_sprop_stereo no',
          `rtp_ports ${rtp}-${rtp + 20}`,
          '',
        ].join('\n'),
      );
      await writeFile(join(d, 'accounts'), `<sip:${name}@127.0.0.1:${sipPort};transport=udp>;regint=0;answermode=auto;audio_codecs=opus/48000/2\n`);
      await writeFile(join(d, 'contacts'), '');
      return d;
    };
    // SIP ports 100 apart: baresip also binds TCP and TLS on the next ports.
    const a = await mk('a', base, base + 200, { source: 'alsa,sweep_cap_paced', player: 'alsa,sweep_play_paced' });
    const b = await mk('b', base + 100, base + 300, { source: `aufile,${wav}`, player: 'alsa,sweep_play_paced_b' });
    const start = (args: string[]): ChildProcess => {
      const p = spawn('baresip', args, { stdio: ['pipe', 'ignore', 'ignore'] });
      p.on('error', () => undefined); // told by the CPU reading below, never an unhandled event
      procs.push(p);
      return p;
    };
    const pb = start(['-f', b]);
    await new Promise((r) => setTimeout(r, 500));
    const pa = start(['-f', a, '-e', `/dial sip:b@127.0.0.1:${base + 100}`]);
    await new Promise((r) => setTimeout(r, 2500));
    const a0 = await cpuMsOf(pa.pid!);
    const b0 = await cpuMsOf(pb.pid!);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const aCpu = (await cpuMsOf(pa.pid!)) - a0;
    const bCpu = (await cpuMsOf(pb.pid!)) - b0;
    if (aCpu <= 0 || bCpu <= 0) throw new Error('baresip used no CPU: the call did not run');
    return { cpuMsPerCallSecond: round(aCpu / seconds, 2), rssMb: round(await rssMbOf(pa.pid!), 1), fileCpuMsPerCallSecond: round(bCpu / seconds, 2) };
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once('exit', r)) : Promise.resolve())));
    await rm(dir, { recursive: true, force: true });
  }
}
