import t from 'tap';
import { JitterBuffer, type PopResult } from '../../runtime/media/jitter-buffer.ts';
import { Playout } from '../../runtime/media/playout.ts';
import { OpusEncoder } from '../../runtime/media/opus.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

const pkt = (seq: number): Uint8Array => Uint8Array.of(seq & 0xff, seq >> 8);
const kinds = (rs: PopResult[]): string => rs.map((r) => (r.kind === 'packet' ? String(r.seq) : r.kind === 'conceal' ? 'C' : '_')).join(' ');

/**
 * Simulates a sender whose packet n is sent at n·20·(1+drift) ms and arrives after `delay(n)`,
 * and a playout ticking every 20 ms of our clock, for `frames` frames. Returns every pop and the
 * buffer's depth at each tick.
 */
function run(jb: JitterBuffer, frames: number, opts: { delay?: (n: number) => number; lose?: (n: number) => boolean; drift?: number; startSeq?: number } = {}) {
  const events: { at: number; n: number }[] = [];
  for (let n = 0; n < frames; n++) {
    if (opts.lose?.(n)) continue;
    events.push({ at: n * 20 * (1 + (opts.drift ?? 0)) + (opts.delay?.(n) ?? 1), n });
  }
  events.sort((a, b) => a.at - b.at);
  const pops: PopResult[] = [];
  const depth: number[] = [];
  let i = 0;
  const end = frames * 20 * (1 + Math.max(0, opts.drift ?? 0)) + 200;
  for (let tick = 10; tick < end; tick += 20) {
    while (i < events.length && events[i]!.at <= tick) {
      const e = events[i++]!;
      jb.push(((opts.startSeq ?? 0) + e.n) & 0xffff, pkt(e.n), e.at);
    }
    pops.push(jb.pop());
    depth.push(jb.stats().depthMs);
  }
  return { pops, depth };
}

void t.test('JitterBuffer with in-order packets plays each once after the target delay', async (t) => {
  const jb = new JitterBuffer({ targetMs: 40 });
  const { pops } = run(jb, 20);
  const played = pops.filter((p) => p.kind === 'packet');
  t.equal(played.length, 20);
  t.equal(pops.findIndex((p) => p.kind === 'packet'), 1, 'playout starts once 40 ms are buffered');
  t.equal(kinds(pops.filter((p) => p.kind !== 'empty')), `${Array.from({ length: 20 }, (_, i) => i).join(' ')} C C C`, 'only the tail after the stream ended is concealed');
});

void t.test('JitterBuffer with reordered packets plays them in sequence order', async (t) => {
  const jb = new JitterBuffer({ targetMs: 40 });
  // Packets 5, 11, 17 arrive 25 ms late (after their successor).
  const { pops } = run(jb, 30, { delay: (n) => (n % 6 === 5 ? 26 : 1) });
  const seqs = pops.filter((p) => p.kind === 'packet').map((p) => (p as { seq: number }).seq);
  t.same(seqs, Array.from({ length: 30 }, (_, i) => i));
  t.equal(jb.stats().late, 0);
});

void t.test('JitterBuffer with lost packets conceals exactly the missing frames', async (t) => {
  const jb = new JitterBuffer();
  const { pops } = run(jb, 40, { lose: (n) => n === 10 || n === 20 || n === 21 });
  const s = kinds(pops.filter((p) => p.kind !== 'empty'));
  t.match(s, /^0 1 .* 9 C 11 .* 19 C C 22 .* 39 C C C$/);
  t.equal(jb.stats().concealed, 6, 'three losses and the three-frame tail');
});

void t.test('JitterBuffer with a packet later than its playout time drops it as late', async (t) => {
  const jb = new JitterBuffer({ minMs: 20, targetMs: 20, maxMs: 60 });
  const { pops } = run(jb, 20, { delay: (n) => (n === 8 ? 200 : 1) });
  t.equal(jb.stats().late, 1);
  t.equal(pops.filter((p) => p.kind === 'conceal').length, 1 + 3, 'its slot was concealed (and the tail)');
});

void t.test('JitterBuffer with duplicates and a sequence wrap plays each frame once', async (t) => {
  const jb = new JitterBuffer();
  const { pops } = run(jb, 10, { startSeq: 65530 });
  t.equal(pops.filter((p) => p.kind === 'packet').length, 10);
  t.equal(jb.push(3, pkt(9), 1000), 'late', 'a packet already played is late');
  t.equal(jb.push(12, pkt(9), 1000), 'queued');
  t.equal(jb.push(12, pkt(9), 1000), 'duplicate');
});

void t.test('JitterBuffer after a burst never holds more than maxMs', async (t) => {
  const jb = new JitterBuffer({ targetMs: 40, maxMs: 60 });
  // A 200 ms stall, then ten packets at once.
  const { depth } = run(jb, 60, { delay: (n) => (n >= 20 && n < 30 ? 200 - (n - 20) * 20 : 1) });
  t.ok(Math.max(...depth) <= 60, `depth at most ${Math.max(...depth)} ms`);
  t.ok(jb.stats().drained > 0, 'old frames dropped to stay within the bound');
});

void t.test('JitterBuffer with jitter adapts its target within the bounds', async (t) => {
  const jb = new JitterBuffer({ minMs: 20, targetMs: 20, maxMs: 60 });
  run(jb, 100, { delay: (n) => (n % 3) * 15 });
  t.ok(jb.stats().targetMs >= 40 && jb.stats().targetMs <= 60, `target ${jb.stats().targetMs} ms`);
  const calm = new JitterBuffer({ minMs: 20, targetMs: 60, maxMs: 60 });
  run(calm, 100);
  t.equal(calm.stats().targetMs, 20, 'a steady link shrinks the target to the minimum');
});

void t.test('JitterBuffer with a sender clock 1% fast keeps latency bounded', async (t) => {
  const jb = new JitterBuffer();
  const { depth } = run(jb, 1500, { drift: -0.01 });
  const late = depth.slice(-200);
  t.ok(Math.max(...late) <= 60, `depth in the last 4 s at most ${Math.max(...late)} ms`);
  t.ok(jb.stats().drained > 0, 'frames drained to follow the faster sender');
});

void t.test('JitterBuffer with a sender clock 1% slow keeps playing without growing latency', async (t) => {
  const jb = new JitterBuffer();
  const { depth, pops } = run(jb, 1500, { drift: 0.01 });
  t.ok(Math.max(...depth.slice(-200)) <= 60);
  const quiet = pops.slice(10, -20).filter((p) => p.kind === 'empty').length;
  t.ok(quiet <= 20, `${quiet} silent ticks over 30 s`);
});

void t.test('JitterBuffer with bad bounds throws INVALID_CONFIG naming them', async (t) => {
  t.throws(() => new JitterBuffer({ minMs: 80, targetMs: 40 }), { code: 'INVALID_CONFIG', message: /min 80/ });
});

void t.test('Playout on a fake clock plays one frame per 20 ms and switches streams without a pause', async (t) => {
  const clock = new FakeClock();
  const out: { at: number; concealed: boolean }[] = [];
  const p = new Playout({ clock, output: (_pcm, concealed) => out.push({ at: clock.mono(), concealed }) });
  t.teardown(() => p.close());
  const enc = new OpusEncoder();
  const opus = enc.encode(new Int16Array(960));
  for (let n = 0; n < 50; n++) {
    // The old holder's stream until the switch, then the new holder's (playback switched).
    p.push(opus, n <= 25 ? n : 5000 + n);
    if (n === 25) p.switchStream();
    clock.advance(20);
  }
  clock.advance(1500);
  const gaps = out.slice(1).map((o, i) => o.at - out[i]!.at);
  t.ok(Math.max(...gaps) <= 20, `largest output gap ${Math.max(...gaps)} ms`);
  t.ok(out.filter((o) => o.concealed).length <= 3, 'at most the drained tail concealed');
  t.equal(clock.pending(), 0, 'the timer sleeps once nothing is left to play');
});

void t.test('Playout paced by capture ticks plays one frame per tick with no timer, and the timer takes over when they stop', async (t) => {
  const clock = new FakeClock();
  let played = 0;
  const p = new Playout({ clock, output: () => played++ });
  t.teardown(() => p.close());
  const opus = new OpusEncoder().encode(new Int16Array(960));
  let seq = 0;
  // Capture runs: a packet arrives and a frame is captured every 20 ms, 5 ms apart.
  for (let n = 0; n < 20; n++) {
    p.push(opus, seq++);
    clock.advance(5);
    p.clockTick();
    t.equal(clock.pending(), 0, 'no playout timer while capture ticks');
    clock.advance(15);
  }
  t.equal(played, 19, `one frame per tick once the target is buffered (played ${played})`);
  // Capture stalls (device gone); packets keep coming: the timer plays them on the same cadence.
  const before = played;
  for (let n = 0; n < 10; n++) {
    p.push(opus, seq++);
    clock.advance(20);
  }
  t.ok(played - before >= 7, `the timer played ${played - before} of 10 frames after the capture stalled`);
  t.ok(clock.pending() > 0, 'the timer runs');
  // Capture comes back: its ticks take over and the timer stops.
  p.push(opus, seq++);
  p.clockTick();
  t.equal(clock.pending(), 0, 'ticks pace playout again');
});
