import type { Test } from 'tap';
import type { ButtonEvent, LedPattern, Panel } from '../../drivers/buttons/panel.ts';
import type { ButtonAction } from '../../drivers/buttons/line-protocol.ts';
import { waitUntil } from '../../lab/story.ts';

/** A panel driver plus a hand on the panel's side of the wire. */
export interface PanelRig {
  /** Not opened yet. */
  panel: Panel;
  press(button: string, action: ButtonAction): Promise<void>;
  /** What the panel's LEDs show now. */
  leds(): ReadonlyMap<string, LedPattern>;
  /** Relay pulses the panel received, ms each. */
  relayPulses(): number[];
  /** The device goes away (a USB adapter pulled) and comes back. */
  unplug(): Promise<void>;
  replug(): Promise<void>;
  /** Releases the rig's own resources (the suite closes the panel first). */
  close(): Promise<void>;
}

/**
 * The Panel contract (drivers/buttons/panel.ts), for any driver: the simulated one, and the
 * serial one over a socat pty pair. `make` returns a fresh rig; the suite tears it down.
 */
export function panelContract(t: Test, name: string, make: () => Promise<PanelRig>): void {
  const fresh = async (t: Test, open = true): Promise<PanelRig> => {
    const rig = await make();
    t.teardown(async () => {
      await rig.panel.close();
      await rig.close();
    });
    if (open) await rig.panel.open();
    return rig;
  };
  const collect = (p: Panel): ButtonEvent[] => {
    const got: ButtonEvent[] = [];
    p.onButton((e) => got.push(e));
    return got;
  };

  void t.test(`${name}: open resolves connected and a second open resolves at once`, async (t) => {
    const rig = await fresh(t);
    t.equal(rig.panel.state, 'connected');
    await t.resolves(rig.panel.open());
    t.equal(rig.panel.state, 'connected');
  });

  void t.test(`${name}: press delivers button events in wire order with rising sequence numbers (U4)`, async (t) => {
    const rig = await fresh(t);
    const got = collect(rig.panel);
    await rig.press('sweep', 'down');
    await rig.press('sweep', 'up');
    await rig.press('door', 'long');
    await waitUntil(() => got.length === 3, 2000, 'three button events');
    t.same(
      got.map((e) => `${e.button}:${e.action}`),
      ['sweep:down', 'sweep:up', 'door:long'],
    );
    // U4: a panel counts every line it sends, so its reply to the host's HELLO may fall between two
    // presses; the button lines' numbers rise, by one or by the lines in between.
    const step = (from: number, to: number): number => (to - from + 256) % 256;
    t.ok([step(got[0]!.seq, got[1]!.seq), step(got[1]!.seq, got[2]!.seq)].every((d) => d >= 1 && d <= 2), 'sequence numbers rise');
  });

  void t.test(`${name}: throwing button listener is not fatal to the next listener`, async (t) => {
    const rig = await fresh(t);
    rig.panel.onButton(() => {
      throw new Error('listener bug');
    });
    const got = collect(rig.panel);
    await rig.press('answer', 'down');
    await waitUntil(() => got.length === 1, 2000, 'event reached the second listener');
    t.equal(got[0]!.button, 'answer');
  });

  void t.test(`${name}: setLed shows the pattern on the panel`, async (t) => {
    const rig = await fresh(t);
    await rig.panel.setLed('call', 'ringing');
    await waitUntil(() => rig.leds().get('call') === 'ringing', 2000, 'LED ringing');
    await rig.panel.setLed('call', 'off');
    await waitUntil(() => rig.leds().get('call') === 'off', 2000, 'LED off');
    t.pass('the panel followed');
  });

  void t.test(`${name}: overlapping commands are applied in call order`, async (t) => {
    const rig = await fresh(t);
    await Promise.all([rig.panel.setLed('call', 'on'), rig.panel.setLed('call', 'sweeping'), rig.panel.setLed('call', 'incall')]);
    await waitUntil(() => rig.leds().get('call') === 'incall', 2000, 'last command wins');
    t.equal(rig.leds().get('call'), 'incall');
  });

  void t.test(`${name}: setLed with a bad name or pattern rejects INVALID_MESSAGE naming it, never throws`, async (t) => {
    const rig = await fresh(t);
    let p: Promise<void> | undefined;
    t.doesNotThrow(() => {
      p = rig.panel.setLed('Call LED', 'on');
    });
    await t.rejects(p!, { name: 'SweepError', code: 'INVALID_MESSAGE', message: /Call LED.*a-z 0-9/ });
    await t.rejects(rig.panel.setLed('call', 'disco' as LedPattern), { code: 'INVALID_MESSAGE', message: /disco.*off, on, ringing, incall, sweeping, error/ });
  });

  void t.test(`${name}: pulseRelay drives the relay once for the asked length`, async (t) => {
    const rig = await fresh(t);
    await rig.panel.pulseRelay(300);
    await waitUntil(() => rig.relayPulses().length === 1, 2000, 'relay pulse');
    t.same(rig.relayPulses(), [300]);
  });

  void t.test(`${name}: pulseRelay outside 20-10000 ms rejects INVALID_MESSAGE and drives nothing`, async (t) => {
    const rig = await fresh(t);
    await t.rejects(rig.panel.pulseRelay(5), { code: 'INVALID_MESSAGE', message: /5 ms.*20-10000/ });
    await t.rejects(rig.panel.pulseRelay(20_000), { code: 'INVALID_MESSAGE' });
    await t.rejects(rig.panel.pulseRelay(1.5), { code: 'INVALID_MESSAGE' });
    await new Promise((r) => setTimeout(r, 50));
    t.same(rig.relayPulses(), []);
  });

  void t.test(`${name}: commands before open reject BAD_STATE`, async (t) => {
    const rig = await fresh(t, false);
    await t.rejects(rig.panel.setLed('call', 'on'), { code: 'BAD_STATE' });
    await t.rejects(rig.panel.pulseRelay(100), { code: 'BAD_STATE' });
  });

  void t.test(`${name}: close is idempotent and later commands reject CLOSED`, async (t) => {
    const rig = await fresh(t);
    const got = collect(rig.panel);
    const inFlight = rig.panel.setLed('call', 'on').then(
      () => 'written',
      (err: { code?: string }) => err.code,
    );
    await rig.panel.close();
    await t.resolves(rig.panel.close());
    t.match(await inFlight, /^(written|CLOSED)$/, 'a command in flight at close settles: written, or CLOSED');
    t.equal(rig.panel.state, 'closed');
    await t.rejects(rig.panel.setLed('call', 'off'), { name: 'SweepError', code: 'CLOSED' });
    await t.rejects(rig.panel.pulseRelay(100), { code: 'CLOSED' });
    await t.rejects(rig.panel.open(), { code: 'CLOSED' });
    await rig.press('sweep', 'down').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    t.same(got, [], 'no button event after close');
  });

  void t.test(`${name}: device lost and back reconnects, replays LED states, refuses relay meanwhile`, async (t) => {
    const rig = await fresh(t);
    const states: string[] = [];
    rig.panel.onState((s) => states.push(s));
    await rig.panel.setLed('call', 'incall');
    await rig.unplug();
    await waitUntil(() => rig.panel.state === 'disconnected', 3000, 'panel disconnected');
    await t.rejects(rig.panel.pulseRelay(200), { code: 'OFFLINE' }, 'no relay pulse is queued for later');
    await t.resolves(rig.panel.setLed('call', 'ringing'), 'LED state is kept while disconnected');
    await rig.replug();
    await waitUntil(() => rig.panel.state === 'connected', 5000, 'panel reconnected');
    await waitUntil(() => rig.leds().get('call') === 'ringing', 3000, 'LED state replayed after reconnection');
    const got = collect(rig.panel);
    await rig.press('sweep', 'down');
    await waitUntil(() => got.length === 1, 2000, 'buttons work again');
    t.same(states, ['disconnected', 'connected']);
    t.equal(rig.panel.counters.disconnects, 1);
    t.equal(rig.panel.counters.reconnects, 1);
    t.same(rig.relayPulses(), []);
  });
}
