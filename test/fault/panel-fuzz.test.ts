import t from 'tap';
import { formatPanel, LineDecoder, toPanelMessage } from '../../drivers/buttons/line-protocol.ts';
import { PanelEmulator } from '../../drivers/buttons/panel-emulator.ts';
import type { ButtonEvent } from '../../drivers/buttons/panel.ts';
import { SerialPanel } from '../../drivers/buttons/serial-panel.ts';
import { waitUntil } from '../../lab/story.ts';
import { silentLogger } from '../../platform/log.ts';
import { panelRigs } from '../helpers/panels.ts';
import { SocatPair } from '../helpers/socat.ts';
import { inCall, labWorld, sleep, states } from '../helpers/world.ts';

/** A seeded generator (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.SWEEP_FUZZ_SEED ?? 5);

function noise(r: () => number, max: number): Buffer {
  return Buffer.from(Array.from({ length: Math.floor(r() * max) }, () => Math.floor(r() * 256)));
}

/** The line with one byte (not its newline) changed to another byte that is not a newline: XOR catches every such change. */
function corrupt(r: () => number, line: string): Buffer {
  const b = Buffer.from(line, 'latin1');
  const i = Math.floor(r() * (b.length - 1));
  let v = b[i]!;
  while (v === b[i] || v === 0x0a) v = Math.floor(r() * 256);
  b[i] = v;
  return b;
}

/** Splits a buffer into reads of random sizes. */
function reads(r: () => number, buf: Buffer, max = 20): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = 1 + Math.floor(r() * max);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}

void t.test('LineDecoder fed random bytes and corrupted lines never throws and delivers only intact lines', async (t) => {
  const r = rng(SEED);
  const d = new LineDecoder(toPanelMessage);
  const sent: number[] = [];
  const got: Array<{ button: string; seq: number }> = [];
  for (let i = 0; i < 3000; i++) {
    const parts = [noise(r, 100), Buffer.from('\n')];
    const seq = i % 256;
    if (r() < 0.5) {
      parts.push(Buffer.from(formatPanel({ type: 'button', seq, button: 'ok', action: 'down' })));
      sent.push(seq);
    }
    parts.push(corrupt(r, formatPanel({ type: 'button', seq, button: 'bad', action: 'down' })));
    for (const chunk of reads(r, Buffer.concat(parts))) {
      for (const m of d.push(chunk)) if (m.type === 'button') got.push({ button: m.button, seq: m.seq });
    }
  }
  t.same(new Set(got.map((g) => g.button)), new Set(['ok']), 'no corrupted line was delivered');
  t.same(got.map((g) => g.seq), sent, 'every intact line was delivered, in order');
  t.ok(d.stats.badChecksum + d.stats.malformed + d.stats.overlong > 3000, `rejections counted: ${JSON.stringify(d.stats)}`);
});

void t.test('SerialPanel over socat fed bursts of noise and split, corrupted lines delivers only intact button lines', async (t) => {
  const pair = await SocatPair.create();
  t.teardown(() => pair.close());
  const wire = await PanelEmulator.open(pair.b);
  t.teardown(() => wire.close());
  const panel = new SerialPanel({ path: pair.a, baudRate: 115_200, log: silentLogger(), heartbeatMs: 0 });
  t.teardown(() => panel.close());
  await panel.open();
  const got: ButtonEvent[] = [];
  panel.onButton((e) => got.push(e));
  const r = rng(SEED + 1);
  let intact = 0;
  const started = Date.now();
  for (let burst = 0; burst < 40; burst++) {
    const parts: Buffer[] = [];
    for (let i = 0; i < 10; i++) {
      parts.push(noise(r, 120), Buffer.from('\n'));
      const seq = (burst * 10 + i) % 256;
      if (i % 3 === 0) {
        parts.push(Buffer.from(formatPanel({ type: 'button', seq, button: 'ok', action: 'up' })));
        intact += 1;
      }
      parts.push(corrupt(r, formatPanel({ type: 'button', seq, button: 'sweep', action: 'down' })));
    }
    // A burst: every read written back to back, without waiting.
    await Promise.all(reads(r, Buffer.concat(parts), 64).map((c) => wire.writeRaw(c)));
  }
  await waitUntil(() => got.length >= intact, 5000, `${intact} intact lines`);
  await sleep(100);
  t.equal(got.length, intact, 'every intact line, and nothing else');
  t.ok(got.every((e) => e.button === 'ok'), 'no corrupted line fired');
  t.ok(panel.counters.badChecksum + panel.counters.malformed > 0, `dropped lines counted: ${JSON.stringify(panel.counters)}`);
  t.equal(panel.state, 'connected');
  t.ok(Date.now() - started < 20_000, 'bounded in time');
});

void t.test('corrupted sweep and door lines on the handset wire fire no action; the intact one sweeps (issue 5)', async (t) => {
  const world = await labWorld(t);
  const rig = await panelRigs(t, world);
  await inCall(world);
  const r = rng(SEED + 2);
  for (let i = 0; i < 60; i++) {
    const button = i % 2 ? 'sweep' : 'door';
    await rig.wire.writeRaw(Buffer.concat([noise(r, 40), Buffer.from('\n'), corrupt(r, formatPanel({ type: 'button', seq: i, button, action: 'down' }))]));
  }
  await sleep(400);
  t.same(states(world, ['intercom', 'handset', 'phone']), { intercom: 'active@handset', handset: 'active@intercom', phone: 'none' });
  t.same(rig.handsetActions, [], 'no action fired');
  t.same(rig.intercomPanel.relayPulses, [], 'no relay pulse');
  const c = rig.handset.panel.counters;
  t.ok(c.badChecksum + c.malformed >= 60, `rejections counted: ${JSON.stringify(c)}`);

  await rig.wire.writeRaw('\n');
  await rig.wire.press('sweep');
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 3000, 'handset leg ended');
  t.same(states(world, ['intercom', 'phone']), { intercom: 'active@phone', phone: 'active@intercom' });
});
