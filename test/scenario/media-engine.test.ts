import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SimulatedAnalysingSink, SimulatedToneSource } from '../../drivers/audio/simulated.ts';
import { loadOrCreateKeys, type EndpointKeys } from '../../runtime/identity/keys.ts';
import { MediaEngine } from '../../runtime/media/media-engine.ts';
import { OpusEncoder } from '../../runtime/media/opus.ts';
import { connectPair, loopbackRelay } from '../../runtime/p2p/loopback-pair.ts';
import { createPeerTransport } from '../../runtime/p2p/peer-transport.ts';
import type { PeerTransport } from '../../runtime/p2p/transport.ts';
import { silentLogger } from '../../platform/log.ts';
import { watchLoopStalls } from '../../runtime/util/loop-stalls.ts';

const log = silentLogger();
let keys: EndpointKeys[] = [];
let dir: string;

t.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sweep-me-'));
  keys = await Promise.all(['x', 'y', 'z'].map((n) => loadOrCreateKeys(join(dir, n))));
});
t.teardown(() => rm(dir, { recursive: true, force: true }));

let seq = 0;
async function link(t: Test, ka: EndpointKeys, kb: EndpointKeys): Promise<[PeerTransport, PeerTransport]> {
  const relay = loopbackRelay();
  const common = { linkId: `me-${++seq}`, bindAddress: '127.0.0.1', openTimeoutMs: 5000 };
  const a = createPeerTransport({ ...common, role: 'offerer', dtlsCertFile: ka.dtlsCertFile, dtlsKeyFile: ka.dtlsKeyFile, sendSignal: relay.sendFromA }, log);
  const b = createPeerTransport({ ...common, role: 'answerer', dtlsCertFile: kb.dtlsCertFile, dtlsKeyFile: kb.dtlsKeyFile, sendSignal: relay.sendFromB }, log);
  t.teardown(() => {
    a.close();
    b.close();
  });
  await connectPair(relay, a, b);
  return [a, b];
}

/** An endpoint's media: a tone source, an analysing sink and an engine, all closed at teardown. */
function endpoint(t: Test, hz: number) {
  const source = new SimulatedToneSource({ frequencyHz: hz });
  const sink = new SimulatedAnalysingSink();
  const engine = new MediaEngine({ source, sink, log });
  t.teardown(async () => {
    await engine.close();
    await source.close();
    await sink.close();
  });
  return { source, sink, engine };
}

void t.test('MediaEngine.setPlayback switching between two transports plays the new tone with a small gap', async (t) => {
  // X listens; Y (330 Hz) and Z (770 Hz) both send to X, as old and new holder do mid-sweep.
  const [x, y, z] = [endpoint(t, 440), endpoint(t, 330), endpoint(t, 770)];
  const [xy, yx] = await link(t, keys[0]!, keys[1]!);
  const [xz, zx] = await link(t, keys[0]!, keys[2]!);
  y.engine.setSendTargets([yx]);
  z.engine.setSendTargets([zx]);
  x.engine.attach(xz);
  x.engine.setPlayback(xy);
  await Promise.all([x.engine.start(), y.engine.start(), z.engine.start()]);

  await sleep(300);
  t.ok(Math.abs(x.sink.frequencyHz(performance.now() - 200)! - 330) <= 10, 'X hears Y before the switch');

  const firstFromZ = new Promise<void>((resolve) => x.engine.onFirstAudio(xz, resolve));
  await firstFromZ;
  const switchedAt = performance.now();
  const stalls = watchLoopStalls();
  x.engine.setPlayback(xz);
  await sleep(300);
  t.ok(Math.abs(x.sink.frequencyHz(switchedAt + 50)! - 770) <= 10, 'X hears Z after the switch');
  const gap = x.sink.maxGapMs(switchedAt - 100);
  const stall = stalls.stop();
  // A missed switch would leave hundreds of ms of silence; the bound allows three frame periods
  // plus the host's own stalls (the figure itself is measured by the sweep bench).
  t.ok(gap < 60 + stall, `playback gap across the switch ${gap.toFixed(1)} ms (event loop stalled up to ${stall.toFixed(1)} ms)`);
  const s = x.engine.stats();
  t.ok(s.framesDecoded > 20 && s.playbackSwitches === 2 && s.framesSent === 0, JSON.stringify(s));
});

void t.test('MediaEngine encodes each frame once for several send targets', async (t) => {
  const [x, y, z] = [endpoint(t, 440), endpoint(t, 330), endpoint(t, 770)];
  const [xy, yx] = await link(t, keys[0]!, keys[1]!);
  const [xz, zx] = await link(t, keys[0]!, keys[2]!);
  x.engine.setSendTargets([xy, xz]);
  y.engine.setPlayback(yx);
  z.engine.setPlayback(zx);
  await x.engine.start();
  await sleep(400);
  await x.engine.stop();
  const s = x.engine.stats();
  t.equal(s.packetsSent, 2 * s.framesSent, 'one encode, two packets per frame');
  t.equal(s.framesSent, s.framesCaptured);
  await sleep(50);
  for (const e of [y, z]) t.ok(Math.abs(e.sink.frequencyHz()! - 440) <= 10, 'both targets hear X');
});

/** A transport stand-in whose incoming audio the test injects packet by packet. */
function injectable(): { transport: PeerTransport; inject: (opus: Uint8Array, seq: number) => void } {
  const fns: ((opus: Uint8Array, seq: number, ts: number) => void)[] = [];
  const transport = {
    linkId: 'stub',
    role: 'offerer',
    opened: Promise.resolve(),
    isOpen: true,
    remoteFingerprint: () => undefined,
    acceptSignal: () => {},
    sendText: () => {},
    onText: () => {},
    sendAudio: () => {},
    onAudio: (fn) => fns.push(fn),
    onClosed: () => {},
    close: () => {},
  } satisfies PeerTransport;
  return { transport, inject: (opus, s) => fns.forEach((fn) => fn(opus, s, s * 960)) };
}

void t.test('MediaEngine with a sequence gap conceals up to three missing frames and drops late ones', async (t) => {
  const x = endpoint(t, 440);
  const { transport, inject } = injectable();
  x.engine.setPlayback(transport);
  const enc = new OpusEncoder();
  const src = new SimulatedToneSource({ frequencyHz: 550 });
  t.teardown(() => src.close());
  const frames: Uint8Array[] = [];
  src.onFrame((pcm) => frames.push(enc.encode(pcm)));
  await src.start();
  await sleep(300);
  await src.stop();
  // 65534, 65535, (0 lost), 1, (2, 3, 4, 5, 6 lost: too long to conceal), 7, late 1.
  const seqs = [65534, 65535, 1, 7, 1];
  seqs.forEach((s, i) => inject(frames[i]!, s));
  await sleep(10);
  const st = x.engine.stats();
  t.equal(st.framesConcealed, 1, 'one frame concealed across the wrap');
  t.equal(st.framesDecoded, 4);
  t.equal(st.framesDropped, 1, 'the late packet dropped');
  t.equal(x.sink.frames.length, 5, 'decoded and concealed frames reach the sink');
});

void t.test('MediaEngine.detach of the playback transport stops playback and first-audio listeners', async (t) => {
  const [x, y] = [endpoint(t, 440), endpoint(t, 330)];
  const [xy, yx] = await link(t, keys[0]!, keys[1]!);
  let fired = 0;
  x.engine.onFirstAudio(xy, () => fired++);
  x.engine.setPlayback(xy);
  x.engine.detach(xy);
  y.engine.setSendTargets([yx]);
  await y.engine.start();
  await sleep(200);
  t.equal(fired, 0);
  t.equal(x.sink.frames.length, 0);
  t.equal(x.engine.stats().framesReceived, 0);
});

void t.test('MediaEngine.close is idempotent and start afterwards rejects CLOSED', async (t) => {
  const x = endpoint(t, 440);
  await x.engine.start();
  await x.engine.close();
  await x.engine.close();
  t.notOk(x.source.running, 'the source was stopped');
  await t.rejects(x.engine.start(), { code: 'CLOSED' });
});
