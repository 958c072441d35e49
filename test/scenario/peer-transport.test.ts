import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SimulatedAnalysingSink, SimulatedToneSource } from '../../drivers/audio/simulated.ts';
import { loadOrCreateKeys, type EndpointKeys } from '../../runtime/identity/keys.ts';
import { OpusDecoder, OpusEncoder } from '../../runtime/media/opus.ts';
import { connectPair, loopbackRelay } from '../../runtime/p2p/loopback-pair.ts';
import { createPeerTransport } from '../../runtime/p2p/peer-transport.ts';
import type { PeerTransport } from '../../runtime/p2p/transport.ts';
import type { SignalPayload } from '../../core/protocol/access.ts';
import { silentLogger } from '../../platform/log.ts';

const log = silentLogger();
let keysA: EndpointKeys;
let keysB: EndpointKeys;
let dir: string;

t.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sweep-pt-'));
  [keysA, keysB] = await Promise.all([loadOrCreateKeys(join(dir, 'a')), loadOrCreateKeys(join(dir, 'b'))]);
});
t.teardown(() => rm(dir, { recursive: true, force: true }));

let seq = 0;
/** Two transports on 127.0.0.1 joined by an in-process relay, closed at teardown. */
function pair(t: Test, opts: { openTimeoutMs?: number; linkId?: string } = {}) {
  const relay = loopbackRelay();
  const linkId = opts.linkId ?? `link-${++seq}`;
  const common = { linkId, bindAddress: '127.0.0.1', openTimeoutMs: opts.openTimeoutMs ?? 5000 };
  const a = createPeerTransport({ ...common, role: 'offerer', dtlsCertFile: keysA.dtlsCertFile, dtlsKeyFile: keysA.dtlsKeyFile, sendSignal: relay.sendFromA }, log);
  const b = createPeerTransport({ ...common, role: 'answerer', dtlsCertFile: keysB.dtlsCertFile, dtlsKeyFile: keysB.dtlsKeyFile, sendSignal: relay.sendFromB }, log);
  t.teardown(() => {
    a.close('test over');
    b.close('test over');
  });
  return { a, b, relay, linkId };
}

function nextText(tr: PeerTransport): Promise<string> {
  return new Promise((resolve) => tr.onText(resolve));
}

void t.test('connectPair on 127.0.0.1 opens both ends and ctl carries text both ways', async (t) => {
  const { a, b, relay } = pair(t);
  await connectPair(relay, a, b);
  t.ok(a.isOpen && b.isOpen);
  t.equal(a.role, 'offerer');
  const toB = nextText(b);
  a.sendText('{"hello":"b"}');
  t.equal(await toB, '{"hello":"b"}');
  const toA = nextText(a);
  b.sendText('{"hello":"a"}');
  t.equal(await toA, '{"hello":"a"}');
});

void t.test('remoteFingerprint after set-up equals the peer certificate fingerprint', async (t) => {
  const { a, b, relay } = pair(t);
  await connectPair(relay, a, b);
  t.equal(a.remoteFingerprint(), keysB.dtlsFingerprint);
  t.equal(b.remoteFingerprint(), keysA.dtlsFingerprint);
});

void t.test('sendAudio of an encoded tone is heard at the far sink with its level and frequency', async (t) => {
  const { a, b, relay } = pair(t);
  await connectPair(relay, a, b);
  const source = new SimulatedToneSource({ frequencyHz: 770, levelDbfs: -12 });
  const sink = new SimulatedAnalysingSink();
  t.teardown(async () => {
    await source.close();
    await sink.close();
  });
  const enc = new OpusEncoder();
  const dec = new OpusDecoder();
  const seqs: number[] = [];
  const stamps: number[] = [];
  source.onFrame((pcm) => a.sendAudio(enc.encode(pcm)));
  b.onAudio((opus, s, ts) => {
    seqs.push(s);
    stamps.push(ts);
    void sink.write(dec.decode(opus));
  });
  await source.start();
  await sleep(600);
  await source.stop();
  await sleep(50);
  t.ok(sink.frames.length >= 25, `${sink.frames.length} frames heard`);
  t.ok(Math.abs(sink.frequencyHz()! - 770) <= 10, `frequency ${sink.frequencyHz()}`);
  // A sine peaking at -12 dBFS has an RMS of -15 dBFS.
  t.ok(Math.abs(sink.levelDbfs() + 15) <= 2, `level ${sink.levelDbfs().toFixed(1)} dBFS`);
  t.ok(seqs.every((s, i) => i === 0 || s === ((seqs[i - 1]! + 1) & 0xffff)), 'sequence numbers consecutive');
  t.ok(stamps.every((ts, i) => i === 0 || ts === ((stamps[i - 1]! + 960) >>> 0)), 'timestamps advance by 960');
});

void t.test('close on one side fires onClosed on the other', async (t) => {
  const { a, b, relay } = pair(t);
  await connectPair(relay, a, b);
  const closedB = new Promise<string>((resolve) => b.onClosed(resolve));
  const closedA = new Promise<string>((resolve) => a.onClosed(resolve));
  a.close('bye');
  t.equal(await closedA, 'bye');
  t.type(await closedB, 'string');
  t.notOk(b.isOpen);
  t.throws(() => b.sendText('x'), { code: 'CLOSED' });
  t.doesNotThrow(() => b.sendAudio(new Uint8Array(10)), 'audio on a closed link is dropped');
  a.close('again');
});

void t.test('close twice is idempotent and onClosed fires once', async (t) => {
  const { a, b, relay } = pair(t);
  await connectPair(relay, a, b);
  let fired = 0;
  a.onClosed(() => fired++);
  a.close();
  a.close();
  await sleep(20);
  t.equal(fired, 1);
});

void t.test('acceptSignal of garbage or another link id is ignored and the link still opens', async (t) => {
  const { a, b, relay, linkId } = pair(t);
  const junk: unknown[] = [
    null,
    42,
    'offer',
    {},
    { kind: 'offer' },
    { kind: 'offer', linkId, sdp: 'v=0 nonsense' },
    { kind: 'answer', linkId, sdp: 12 },
    { kind: 'candidate', linkId, candidate: 'candidate:garbage', mid: '0' },
    { kind: 'candidate', linkId, candidate: 'candidate:1 1 UDP 2114977791 192.0.2.7 9 typ host', mid: '0' },
    { kind: 'offer', linkId: 'other-link', sdp: 'v=0' },
    { kind: 'connect', linkId },
    { kind: 'bogus', linkId },
  ];
  for (const j of junk) {
    t.doesNotThrow(() => a.acceptSignal(j as SignalPayload));
    t.doesNotThrow(() => b.acceptSignal(j as SignalPayload));
  }
  await connectPair(relay, a, b);
  t.ok(a.isOpen && b.isOpen);
});

void t.test('sendText before the link is open throws CLOSED', async (t) => {
  const { a, b, relay } = pair(t);
  t.throws(() => a.sendText('early'), { name: 'SweepError', code: 'CLOSED' });
  await connectPair(relay, a, b);
});

void t.test('opened when the peer never answers rejects TIMEOUT and the transport closes', async (t) => {
  const sent: SignalPayload[] = [];
  const a = createPeerTransport(
    { linkId: 'lonely', role: 'offerer', bindAddress: '127.0.0.1', dtlsCertFile: keysA.dtlsCertFile, dtlsKeyFile: keysA.dtlsKeyFile, sendSignal: (p) => sent.push(p), openTimeoutMs: 300 },
    log,
  );
  t.teardown(() => a.close());
  const closed = new Promise<string>((resolve) => a.onClosed(resolve));
  await t.rejects(a.opened, { name: 'SweepError', code: 'TIMEOUT', message: /lonely/ });
  t.match(await closed, /300 ms/);
  t.equal(sent[0]?.kind, 'offer', 'an offer went out');
  t.match((sent[0] as { sdp: string }).sdp, /m=audio[^]*a=rtpmap:111 opus\/48000\/2[^]*minptime=10;useinbandfec=1;stereo=0;sprop-stereo=0/);
  t.notOk(sent.some((p) => p.kind === 'candidate'), 'the offerer holds its candidates until the answer');
});

void t.test('close before open rejects opened with CLOSED', async (t) => {
  const { a, b } = pair(t);
  a.close('changed my mind');
  await t.rejects(a.opened, { code: 'CLOSED', message: /changed my mind/ });
  b.close();
  await t.rejects(b.opened, { code: 'CLOSED' });
});

void t.test('createPeerTransport with a missing certificate file throws INVALID_CONFIG naming it', async (t) => {
  t.throws(
    () => createPeerTransport({ linkId: 'nocert', role: 'offerer', bindAddress: '127.0.0.1', dtlsCertFile: '/nonexistent/cert.pem', dtlsKeyFile: '/nonexistent/key.pem', sendSignal: () => {} }, log),
    { code: 'INVALID_CONFIG', message: /nonexistent\/cert\.pem/ },
  );
});
