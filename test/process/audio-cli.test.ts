import t from 'tap';
import { Writable } from 'node:stream';
import { audioCli } from '../../tools/audio-test-cli.ts';
import { createAlsaFixture, hasAlsaCapture, hasAlsaTools, tone } from '../helpers/alsa.ts';

const ready = (await hasAlsaTools()) && (await hasAlsaCapture());

function io() {
  let out = '';
  let err = '';
  const w = (f: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        f(chunk.toString());
        cb();
      },
    });
  return { io: { stdout: w((s) => (out += s)), stderr: w((s) => (err += s)) }, out: () => out, err: () => err };
}

void t.test('sweep audio with a bad --seconds exits 2 naming the value', async (t) => {
  const c = io();
  t.equal(await audioCli(['test', '--seconds', '99'], c.io), 2);
  t.match(c.err(), /--seconds: 99/);
});

if (!ready) {
  void t.test('sweep audio on ALSA devices', { skip: 'ALSA tools or alsa-capture missing (apt install alsa-utils libasound2-dev)' }, () => undefined);
} else {
  const fx = await createAlsaFixture(tone(440, 1));
  const pacer = fx.pacer(tone(700, 1, -20));
  t.teardown(async () => {
    pacer.close();
    await fx.close();
  });

  void t.test('sweep audio list on a machine with ALSA lists the generated devices', async (t) => {
    const c = io();
    t.equal(await audioCli(['list'], c.io), 0);
    t.match(c.out(), /playback devices[\s\S]*sweep_play[\s\S]*capture devices[\s\S]*sweep_cap_paced/);
  });

  void t.test('sweep audio test on working devices plays, records and reports the level and tone', async (t) => {
    const c = io();
    t.equal(await audioCli(['test', '--playback', 'sweep_play', '--capture', 'sweep_cap_paced', '--seconds', '1'], c.io), 0, c.out());
    t.match(c.out(), /playback sweep_play: OK, 50 frames of 1000 Hz/);
    t.match(c.out(), /capture sweep_cap_paced: OK, \d+ frames, peak -20\.\d dBFS, RMS -23\.\d dBFS, dominant (69\d|70\d) Hz/);
  });

  void t.test('sweep audio test on a missing device reports FAILED naming it and exits 1', async (t) => {
    const c = io();
    t.equal(await audioCli(['test', '--playback', 'sweep_nothing', '--no-record'], c.io), 1);
    t.match(c.out(), /playback sweep_nothing: FAILED — .*sweep_nothing/);
  });
}
