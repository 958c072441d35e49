import t from 'tap';
import { buildRtp, isRtcp, parseRtp, seqDelta } from '../../runtime/media/rtp.ts';

const payload = Uint8Array.of(0xde, 0xad, 0xbe, 0xef);
const base = { payloadType: 111, sequence: 65535, timestamp: 0xfffffff0, ssrc: 0x12345678 };

void t.test('parseRtp of a plain packet returns its header fields and payload', async (t) => {
  const p = parseRtp(buildRtp({ ...base, marker: true }, payload))!;
  t.match(p, { marker: true, payloadType: 111, sequence: 65535, timestamp: 0xfffffff0, ssrc: 0x12345678, csrcs: [] });
  t.same([...p.payload], [...payload]);
  t.equal(p.extension, undefined);
});

void t.test('parseRtp with CSRCs, a header extension and padding strips all three', async (t) => {
  const ext = { profile: 0xbede, data: Uint8Array.of(0x10, 0xaa, 0, 0) };
  const p = parseRtp(buildRtp({ ...base, csrcs: [1, 2, 3], extension: ext, padding: 3 }, payload))!;
  t.same(p.csrcs, [1, 2, 3]);
  t.equal(p.extension?.profile, 0xbede);
  t.same([...p.extension!.data], [0x10, 0xaa, 0, 0]);
  t.same([...p.payload], [...payload]);
});

void t.test('parseRtp of a packet inside a larger buffer reads at its byte offset', async (t) => {
  const pkt = buildRtp(base, payload);
  const big = new Uint8Array(pkt.length + 7);
  big.set(pkt, 7);
  t.equal(parseRtp(big.subarray(7))?.ssrc, 0x12345678);
});

void t.test('parseRtp of malformed packets returns undefined without throwing', async (t) => {
  const good = buildRtp({ ...base, csrcs: [9] }, payload);
  const cases: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['shorter than the fixed header', good.subarray(0, 11)],
    ['version 1', Uint8Array.from(good, (b, i) => (i === 0 ? (b & 0x3f) | 0x40 : b))],
    ['CSRC count beyond the end', Uint8Array.from(buildRtp(base, new Uint8Array(0)), (b, i) => (i === 0 ? b | 0x0f : b))],
    ['extension header cut off', Uint8Array.from([...buildRtp(base, new Uint8Array(0))], (b, i) => (i === 0 ? b | 0x10 : b))],
    ['extension length beyond the end', buildRtp({ ...base, extension: { profile: 1, data: new Uint8Array(4) } }, new Uint8Array(0)).map((b, i) => (i === 15 ? 9 : b))],
    ['padding count zero', Uint8Array.from([...buildRtp(base, payload), 0], (b, i) => (i === 0 ? b | 0x20 : b))],
    ['padding longer than the payload', Uint8Array.from([...buildRtp(base, payload), 200], (b, i) => (i === 0 ? b | 0x20 : b))],
  ];
  for (const [name, buf] of cases) t.equal(parseRtp(buf), undefined, name);
  // Random garbage never throws.
  t.doesNotThrow(() => {
    for (let i = 0; i < 2000; i++) parseRtp(Uint8Array.from({ length: i % 40 }, () => Math.floor(Math.random() * 256)));
  }, '2000 random buffers');
});

void t.test('isRtcp of a sender report is true and of Opus RTP false', async (t) => {
  t.ok(isRtcp(Uint8Array.of(0x80, 200, 0, 6)));
  t.notOk(isRtcp(buildRtp(base, payload)));
});

void t.test('seqDelta across the 16-bit wrap is small and signed', async (t) => {
  t.equal(seqDelta(65535, 0), 1);
  t.equal(seqDelta(0, 65535), -1);
  t.equal(seqDelta(100, 103), 3);
});
