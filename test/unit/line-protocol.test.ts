import t from 'tap';
import {
  checksumOf,
  encodeFrame,
  formatHost,
  formatPanel,
  LineDecoder,
  MAX_LINE,
  parseLine,
  toHostMessage,
  toPanelMessage,
  type PanelMessage,
} from '../../drivers/buttons/line-protocol.ts';

const enc = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const sweepDown = formatPanel({ type: 'button', seq: 7, button: 'sweep', action: 'down' });

void t.test('encodeFrame of a button line gives the documented bytes', async (t) => {
  // docs/serial-protocol.md's worked example: XOR of "7,BTN,sweep,down".
  t.equal(checksumOf('7,BTN,sweep,down'), 0x25);
  t.equal(sweepDown, '7,BTN,sweep,down*25\n');
  t.equal(formatHost({ type: 'led', seq: 3, led: 'call', pattern: 'sweeping' }), `3,LED,call,sweeping*${checksumOf('3,LED,call,sweeping').toString(16).toUpperCase().padStart(2, '0')}\n`);
});

void t.test('encodeFrame of a line over MAX_LINE throws TOO_LARGE naming the length', async (t) => {
  t.throws(() => encodeFrame({ seq: 1, type: 'LED', args: ['x'.repeat(70)] }), { code: 'TOO_LARGE', message: /at most 64/ });
});

void t.test('parseLine of noise, a bad checksum and a good line tells them apart', async (t) => {
  t.equal(parseLine('hello world'), 'malformed');
  t.equal(parseLine('7,BTN,sweep,down*24'), 'badChecksum');
  t.equal(parseLine('300,HB*00'), 'malformed', 'sequence numbers stop at 255');
  t.same(parseLine('7,BTN,sweep,down*25'), { seq: 7, type: 'BTN', args: ['sweep', 'down'] });
});

void t.test('decoder with a line split across every possible read delivers it once', async (t) => {
  const bytes = enc(sweepDown);
  for (let cut = 1; cut < bytes.length; cut++) {
    const d = new LineDecoder(toPanelMessage);
    const got = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))];
    t.same(got, [{ type: 'button', seq: 7, button: 'sweep', action: 'down' }], `cut at ${cut}`);
  }
});

void t.test('decoder with one byte per read and several lines per read keeps order', async (t) => {
  const d = new LineDecoder(toPanelMessage);
  const lines = [0, 1, 2].map((seq) => formatPanel({ type: 'button', seq, button: 'door', action: 'long' })).join('');
  const byByte: PanelMessage[] = [];
  for (const b of enc(lines)) byByte.push(...d.push(Uint8Array.of(b)));
  t.same(byByte.map((m) => m.seq), [0, 1, 2]);
  t.same(d.push(enc(lines + lines)).map((m) => m.seq), [0, 1, 2, 0, 1, 2]);
  t.equal(d.stats.accepted, 9);
});

void t.test('decoder with CRLF line ends and blank lines accepts the lines', async (t) => {
  const d = new LineDecoder(toPanelMessage);
  const got = d.push(enc(`\r\n\n${sweepDown.replace('\n', '\r\n')}\n`));
  t.equal(got.length, 1);
  t.same(d.stats, { accepted: 1, badChecksum: 0, malformed: 0, invalid: 0, overlong: 0 });
});

void t.test('decoder with garbage, bad checksums and unknown messages counts them and goes on', async (t) => {
  const rejects: string[] = [];
  const d = new LineDecoder(toPanelMessage, (kind) => rejects.push(kind));
  const input = [
    'garbage\n',
    '7,BTN,sweep,down*24\n', // one bit of the checksum flipped
    '7,BTN,swefp,down*25\n', // one bit of the payload flipped
    enc('\x00\xff\x13\n'),
    '1,ZAP*00\n'.replace('00', checksumOf('1,ZAP').toString(16).toUpperCase().padStart(2, '0')),
    `1,BTN,sweep,twice*${checksumOf('1,BTN,sweep,twice').toString(16).toUpperCase().padStart(2, '0')}\n`,
    sweepDown,
  ];
  const got = input.flatMap((x) => d.push(typeof x === 'string' ? enc(x) : x));
  t.same(got, [{ type: 'button', seq: 7, button: 'sweep', action: 'down' }]);
  t.same(d.stats, { accepted: 1, badChecksum: 2, malformed: 2, invalid: 2, overlong: 0 });
  t.same(rejects, ['malformed', 'badChecksum', 'badChecksum', 'malformed', 'invalid', 'invalid']);
});

void t.test('decoder with an over-long line drops it up to its newline and resynchronises', async (t) => {
  const d = new LineDecoder(toPanelMessage);
  const long = 'x'.repeat(MAX_LINE * 3);
  const got = [...d.push(enc(long.slice(0, 100))), ...d.push(enc(long.slice(100) + sweepDown.slice(0, -1))), ...d.push(enc(`\n${sweepDown}`))];
  t.same(got.length, 1, 'the valid line glued to the long one is lost with it; the next one is read');
  t.equal(d.stats.overlong, 1);
  t.equal(d.stats.accepted, 1);
});

void t.test('toPanelMessage and toHostMessage with bad arguments name the value and what is allowed', async (t) => {
  t.throws(() => toPanelMessage({ seq: 1, type: 'BTN', args: ['sweep', 'twice'] }), { code: 'INVALID_MESSAGE', message: /"twice", expected one of down, up, long/ });
  t.throws(() => toHostMessage({ seq: 1, type: 'RELAY', args: ['5'] }), { code: 'INVALID_MESSAGE', message: /"5", expected an integer 20-10000/ });
  t.throws(() => toHostMessage({ seq: 1, type: 'LED', args: ['call'] }), { message: /1 arguments, expected 2/ });
  t.same(toPanelMessage({ seq: 0, type: 'HELLO', args: ['ref-1.0', '1'] }), { type: 'hello', seq: 0, firmware: 'ref-1.0', protocol: 1 });
});

void t.test('formatHost and toHostMessage round-trip every host message', async (t) => {
  const d = new LineDecoder(toHostMessage);
  const msgs = [
    { type: 'hello', seq: 0, protocol: 1 },
    { type: 'led', seq: 1, led: 'call', pattern: 'error' },
    { type: 'relay', seq: 2, ms: 500 },
    { type: 'heartbeat', seq: 255 },
  ] as const;
  t.same(d.push(enc(msgs.map((m) => formatHost(m)).join(''))), msgs);
});
