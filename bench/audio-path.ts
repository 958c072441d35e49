import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AlsaSink } from '../drivers/audio/alsa-sink.ts';
import { AlsaSource } from '../drivers/audio/alsa-source.ts';
import { FRAME_SAMPLES, SAMPLE_RATE } from '../drivers/audio/audio.ts';
import { SimulatedAnalysingSink, SimulatedToneSource } from '../drivers/audio/simulated.ts';
import { analyseTone, startAudioCall } from '../runtime/lab/audio-call.ts';
import { createLogger } from '../runtime/util/log.ts';
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
 *   and playing to ALSA devices, aplay included (measureEndpointCpu). Measured in the same run:
 *   two baresip 1.0 instances calling each other with Opus on loopback, per instance, with file
 *   audio (aufile: no ALSA work, so the ratio leans against us).
 * - mouthToEarMs: a tone onset written into the capture FIFO until it reaches the playback file,
 *   plus the playback device's start threshold (the `null` slave does not pace, so the ALSA
 *   buffer's delay is added from the negotiated figures rather than observed).
 * - addedPlaybackLatencyMs: what the aplay path adds: write() → bytes in the device (measured)
 *   plus the device's start threshold.
 * - loss: 5% and 20% random loss injected on the handset's receive side; longest output dropout
 *   (frames below -40 dBFS inside the tone) and the share of frames concealed.
 */
export async function run(opts: { seconds?: number } = {}): Promise<Record<string, unknown>> {
  const seconds = opts.seconds ?? 10;
  const cpu = await measureEndpointCpu(seconds);
  const ours = await measureOurs(seconds, 0);
  const loss5 = await measureOurs(5, 0.05);
  const loss20 = await measureOurs(5, 0.2);
  const baresip = await measureBaresipAlsa(seconds).catch((err: unknown) => ({ error: (err as Error).message }));
  const bCpu = 'cpuMsPerCallSecond' in baresip ? baresip.cpuMsPerCallSecond : undefined;
  return {
    seconds,
    mouthToEarMs: ours.mouthToEarMs,
    jitterBufferMs: ours.jitterBufferMs,
    addedPlaybackLatencyMs: ours.addedPlaybackLatencyMs,
    cpuMsPerCallSecond: cpu.cpuMsPerCallSecond,
    rssMb: cpu.rssMb,
    baresipCpuMsPerCallSecond: bCpu ?? null,
    baresipRssMb: 'rssMb' in baresip ? baresip.rssMb : null,
    baresipFileAudioCpuMsPerCallSecond: 'fileCpuMsPerCallSecond' in baresip ? baresip.fileCpuMsPerCallSecond : null,
    cpuRatio: bCpu ? round(cpu.cpuMsPerCallSecond / bCpu, 2) : null,
    cpuHeardHz: cpu.heardHz,
    cpuLoudFramesPlayed: cpu.loudFramesPlayed,
    threads: cpu.threads,
    ...('error' in baresip ? { baresipError: baresip.error } : {}),
    loss5: { longestGapFrames: loss5.longestDropoutFrames, concealedPct: loss5.concealedPct, frequencyHz: loss5.frequencyHz },
    loss20: { longestGapFrames: loss20.longestDropoutFrames, concealedPct: loss20.concealedPct, frequencyHz: loss20.frequencyHz },
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

async function measureOurs(seconds: number, loss: number) {
  const log = createLogger({ level: 'silent' });
  // Without loss: one second of silence then one of tone, looped, so every loop has an onset to
  // time. With loss: a steady tone, so every quiet frame is a dropout.
  const input = loss > 0 ? tone(1000, 2, -12) : new Int16Array(2 * SAMPLE_RATE);
  if (loss === 0) input.set(tone(1000, 1, -12), SAMPLE_RATE);
  const fx = await createAlsaFixture(input);
  const pacer = fx.pacer(input);
  const onsetFrame = SAMPLE_RATE / FRAME_SAMPLES;
  const onsets: number[] = [];
  pacer.onWrite = (i, at) => {
    if (i === onsetFrame) onsets.push(at);
  };
  const capture = new AlsaSource({ device: 'sweep_cap_paced' });
  const playback = await AlsaSink.open({ device: 'sweep_play' });
  const quiet = new SimulatedToneSource({ frequencyHz: 300 });
  quiet.silent = true;
  const call = await startAudioCall({ intercom: { source: capture, sink: new SimulatedAnalysingSink() }, handset: { source: quiet, sink: playback }, log });
  const ears: number[] = [];
  let watching = true;
  let jitterDepth = 0;
  let jitterSamples = 0;
  try {
    if (loss > 0) call.handset.media.setReceiveLoss(loss);
    await call.call();
    await new Promise((r) => setTimeout(r, 1500));
    await new Promise((r) => setTimeout(r, seconds * 1000));
    // Watch the playback file grow: note when each silence→tone onset lands in it.
    const fh = await open(fx.playbackFile, 'r');
    // Only what lands from now on: earlier audio carries no arrival time.
    let offset = (await fh.stat()).size & ~1;
    let loud = false;
    const buf = Buffer.alloc(1 << 16);
    const watch = (async () => {
      while (watching) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        if (bytesRead >= 2) {
          const n = bytesRead >> 1;
          for (let i = 0; i < n; i++) {
            const v = Math.abs(buf.readInt16LE(i * 2));
            if (!loud && v > 2000) {
              loud = true;
              ears.push(performance.now());
            } else if (loud && v < 50 && i + 200 < n && Math.abs(buf.readInt16LE((i + 200) * 2)) < 50) loud = false;
          }
          offset += n * 2;
        }
        const js = call.handset.media.jitterStats();
        if (js) {
          jitterDepth += js.depthMs;
          jitterSamples++;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    await new Promise((r) => setTimeout(r, loss > 0 ? 100 : 6000));
    watching = false;
    await watch;
    await fh.close();
    await call.intercom.calls.hangup();
    const st = call.handset.media.stats();
    // Pair each onset heard with the latest onset written before it.
    const delays = ears.map((e) => e - Math.max(...onsets.filter((o) => o < e))).filter((d) => Number.isFinite(d) && d >= 0 && d < 1000);
    delays.sort((a, b) => a - b);
    const pipeMs = await measurePipeMs(playback, fx.playbackFile);
    const n = playback.negotiated();
    const startMs = n ? ((n.bufferFrames / 2) / SAMPLE_RATE) * 1000 : 20;
    await playback.close();
    const out = analyseTone(await readRaw(fx.playbackFile));
    return {
      mouthToEarMs: delays.length ? round(delays[Math.floor(delays.length / 2)]! + startMs, 1) : null,
      jitterBufferMs: round(jitterDepth / Math.max(1, jitterSamples), 1),
      addedPlaybackLatencyMs: round(pipeMs + startMs, 1),
      longestDropoutFrames: out.longestDropoutFrames,
      frequencyHz: out.frequencyHz,
      concealedPct: round((100 * st.framesConcealed) / Math.max(1, st.framesConcealed + st.framesDecoded), 1),
    };
  } finally {
    watching = false;
    await call.close();
    await capture.close();
    await playback.close();
    pacer.close();
    await fx.close();
  }
}

/** write() → bytes in the playback file, median over 20 frames: the pipe and aplay's own delay. */
async function measurePipeMs(sink: AlsaSink, file: string): Promise<number> {
  const { stat } = await import('node:fs/promises');
  const frame = new Int16Array(FRAME_SAMPLES).fill(1000);
  const ms: number[] = [];
  for (let i = 0; i < 20; i++) {
    const size0 = (await stat(file)).size;
    const t0 = performance.now();
    await sink.write(frame);
    while ((await stat(file)).size === size0 && performance.now() - t0 < 200) await new Promise((r) => setImmediate(r));
    ms.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  ms.sort((a, b) => a - b);
  return ms[10]!;
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
