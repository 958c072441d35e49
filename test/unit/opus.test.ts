import t from 'tap';
import { FRAME_SAMPLES } from '../../drivers/audio/audio.ts';
import { dominantFrequency, rmsDbfsOf } from '../../drivers/audio/simulated.ts';
import { OpusDecoder, OpusEncoder } from '../../runtime/media/opus.ts';

function tone(hz: number, frame: number, amp = 8000): Int16Array {
  const pcm = new Int16Array(FRAME_SAMPLES);
  for (let i = 0; i < FRAME_SAMPLES; i++) pcm[i] = Math.round(amp * Math.sin((2 * Math.PI * hz * (frame * FRAME_SAMPLES + i)) / 48_000));
  return pcm;
}
const GRID = Array.from({ length: 79 }, (_, i) => 100 + 50 * i);

void t.test('OpusEncoder.encode then OpusDecoder.decode of a tone keeps its frequency and level', async (t) => {
  const enc = new OpusEncoder();
  const dec = new OpusDecoder();
  let out: Int16Array = new Int16Array(0);
  let bytes = 0;
  for (let f = 0; f < 50; f++) {
    const pkt = enc.encode(tone(770, f));
    bytes += pkt.length;
    out = dec.decode(pkt);
  }
  t.equal(out.length, FRAME_SAMPLES);
  t.ok(Math.abs(dominantFrequency(out, GRID)! - 770) <= 5, 'frequency kept');
  t.ok(Math.abs(rmsDbfsOf(out) - rmsDbfsOf(tone(770, 0))) < 2, 'level kept within 2 dB');
  const kbps = (bytes * 8) / 1000; // 50 frames = 1 s
  t.ok(kbps > 20 && kbps < 45, `about 32 kbit/s (${kbps.toFixed(1)})`);
});

void t.test('OpusEncoder.encode returns copies that later frames do not overwrite', async (t) => {
  const enc = new OpusEncoder();
  const a = enc.encode(tone(440, 0));
  const snapshot = [...a];
  enc.encode(tone(1500, 1));
  t.same([...a], snapshot);
});

void t.test('OpusEncoder.encode of a wrong-length frame throws INVALID_MESSAGE naming the length', async (t) => {
  t.throws(() => new OpusEncoder().encode(new Int16Array(480)), { code: 'INVALID_MESSAGE', message: /480/ });
});

void t.test('OpusEncoder with complexity 11 throws INVALID_CONFIG', async (t) => {
  t.throws(() => new OpusEncoder({ complexity: 11 }), { code: 'INVALID_CONFIG', message: /11/ });
});

void t.test('OpusDecoder.conceal after good frames yields one 20 ms frame continuing the tone', async (t) => {
  const enc = new OpusEncoder();
  const dec = new OpusDecoder();
  for (let f = 0; f < 20; f++) dec.decode(enc.encode(tone(440, f)));
  const plc = dec.conceal();
  t.equal(plc.length, FRAME_SAMPLES);
  t.ok(rmsDbfsOf(plc) > -40, 'concealment is not silence');
  const next = dec.decode(enc.encode(tone(440, 21)));
  t.equal(next.length, FRAME_SAMPLES, 'decoding continues after concealment');
});

void t.test('OpusDecoder.decode of garbage or empty input throws INVALID_MESSAGE', async (t) => {
  const dec = new OpusDecoder();
  t.throws(() => dec.decode(Uint8Array.of(0xff, 0xff, 0xff)), { code: 'INVALID_MESSAGE' });
  t.throws(() => dec.decode(new Uint8Array(0)), { code: 'INVALID_MESSAGE' });
});
