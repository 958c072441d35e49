import { SerialPort } from 'serialport';
import { Backoff } from '../../core/backoff.ts';
import { systemClock, type Clock, type TimerHandle } from '../../core/clock.ts';
import { SweepError, toSweepError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { formatHost, LineDecoder, PROTOCOL_VERSION, toPanelMessage, type HostMessage, type LedPattern, type PanelMessage } from './line-protocol.ts';
import { ButtonSequencer, checkLed, checkRelay, HostSeq, PanelListeners } from './panel-core.ts';
import { emptyCounters, type ButtonEvent, type Panel, type PanelInfo, type PanelState } from './panel.ts';

export interface SerialPanelOptions {
  path: string;
  baudRate: number;
  dataBits?: 5 | 6 | 7 | 8;
  parity?: 'none' | 'even' | 'odd' | 'mark' | 'space';
  stopBits?: 1 | 1.5 | 2;
  log: Logger;
  clock?: Clock;
  /** Reopen back-off after the device went away. */
  reconnect?: { initialMs: number; maxMs: number };
  /** The host's heartbeat line every this many ms; 0 sends none. */
  heartbeatMs?: number;
}

interface PendingWrite {
  reject: (err: SweepError) => void;
}

/**
 * The Panel contract (panel.ts) over a UART with serialport 13, opened by path (SerialPort.list
 * needs udevadm, which a device may lack). Decoding is the pure LineDecoder; this class only
 * moves bytes, keeps the LED states, and reopens the port when it disappears.
 */
export class SerialPanel implements Panel {
  readonly counters = emptyCounters();
  #state: PanelState = 'new';
  #info: PanelInfo | undefined;
  #port: SerialPort | undefined;
  #opening: Promise<void> | undefined;
  #retryTimer: TimerHandle | undefined;
  #heartbeatTimer: TimerHandle | undefined;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #listeners: PanelListeners;
  readonly #seq = new HostSeq();
  readonly #buttons = new ButtonSequencer(this.counters);
  readonly #leds = new Map<string, LedPattern>();
  readonly #pending = new Set<PendingWrite>();
  readonly #backoff: Backoff;
  readonly #decoder: LineDecoder<PanelMessage>;
  /** clock.mono() when the panel was last heard (any valid line). */
  lastHeardMono: number | undefined;

  constructor(private readonly opts: SerialPanelOptions) {
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.log;
    this.#listeners = new PanelListeners(opts.log);
    this.#backoff = new Backoff(opts.reconnect ?? { initialMs: 100, maxMs: 2000 });
    this.#decoder = new LineDecoder(toPanelMessage, (kind, detail) => {
      const n = ++this.counters[kind];
      // Noise comes in bursts: the first few drops of each kind, then every hundredth.
      if (n <= 10 || n % 100 === 0) this.#log.warn({ path: opts.path, kind, count: n, detail }, 'panel line dropped');
    });
  }

  get state(): PanelState {
    return this.#state;
  }

  get info(): PanelInfo | undefined {
    return this.#info;
  }

  onButton(fn: (e: ButtonEvent) => void): void {
    this.#listeners.onButton(fn);
  }

  onState(fn: (s: PanelState) => void): void {
    this.#listeners.onState(fn);
  }

  async open(): Promise<void> {
    if (this.#state === 'closed') throw new SweepError('CLOSED', `serial panel ${this.opts.path} is closed`);
    if (this.#state !== 'new') return;
    this.#opening ??= this.#openPort().then(() => {
      if (this.#state === 'closed') return;
      this.#setState('connected');
      this.#greet();
      const hb = this.opts.heartbeatMs ?? 1000;
      if (hb > 0) this.#heartbeatTimer = this.#clock.setInterval(() => this.#heartbeat(), hb);
    });
    try {
      await this.#opening;
    } finally {
      this.#opening = undefined;
    }
    if ((this.#state as PanelState) === 'closed') throw new SweepError('CLOSED', `serial panel ${this.opts.path} was closed while opening`);
  }

  async setLed(led: string, pattern: LedPattern): Promise<void> {
    checkLed(led, pattern);
    this.#assertOpened();
    this.#leds.set(led, pattern);
    if (this.#state !== 'connected') return; // sent again on reconnection
    await this.#send({ type: 'led', seq: this.#seq.next(), led, pattern });
  }

  async pulseRelay(ms: number): Promise<void> {
    checkRelay(ms);
    this.#assertOpened();
    if (this.#state !== 'connected') throw new SweepError('OFFLINE', `serial panel ${this.opts.path} is disconnected: relay not pulsed`);
    await this.#send({ type: 'relay', seq: this.#seq.next(), ms });
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState('closed');
    this.#listeners.clear();
    if (this.#retryTimer) this.#clock.clear(this.#retryTimer);
    if (this.#heartbeatTimer) this.#clock.clear(this.#heartbeatTimer);
    this.#rejectPending(new SweepError('CLOSED', `serial panel ${this.opts.path} closed`));
    const opening = this.#opening;
    if (opening) await opening.catch(() => undefined);
    await this.#closePort();
  }

  #assertOpened(): void {
    if (this.#state === 'new') throw new SweepError('BAD_STATE', `serial panel ${this.opts.path} is not open yet`);
    if (this.#state === 'closed') throw new SweepError('CLOSED', `serial panel ${this.opts.path} is closed`);
  }

  #setState(s: PanelState): void {
    if (this.#state === s) return;
    this.#state = s;
    this.#log.info({ path: this.opts.path, state: s }, 'panel state');
    this.#listeners.state(s);
  }

  #openPort(): Promise<void> {
    const { path, baudRate, dataBits = 8, parity = 'none', stopBits = 1 } = this.opts;
    const port = new SerialPort({ path, baudRate, dataBits, parity, stopBits, autoOpen: false });
    return new Promise<void>((resolve, reject) => {
      port.open((err) => {
        if (err) {
          reject(new SweepError('OFFLINE', `serial panel: cannot open ${path} at ${baudRate} baud: ${err.message}`, { cause: err }));
          return;
        }
        if (this.#state === 'closed') {
          port.close(() => resolve());
          return;
        }
        this.#port = port;
        this.#decoder.reset();
        port.on('data', (chunk: Buffer) => this.#onData(chunk));
        port.on('error', (e: Error) => this.#log.warn({ path, err: e.message }, 'serial port error'));
        port.on('close', () => this.#onPortClosed(port));
        resolve();
      });
    });
  }

  async #closePort(): Promise<void> {
    const port = this.#port;
    this.#port = undefined;
    if (!port?.isOpen) return;
    port.removeAllListeners('data');
    await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  #onPortClosed(port: SerialPort): void {
    if (port !== this.#port || this.#state === 'closed') return;
    this.#port = undefined;
    this.counters.disconnects += 1;
    this.#rejectPending(new SweepError('OFFLINE', `serial panel ${this.opts.path} went away`));
    this.#setState('disconnected');
    this.#log.warn({ path: this.opts.path }, 'serial panel lost: reconnecting');
    this.#scheduleReopen();
  }

  #scheduleReopen(): void {
    if (this.#state === 'closed') return;
    const delay = this.#backoff.next();
    this.#retryTimer = this.#clock.setTimeout(() => {
      this.#retryTimer = undefined;
      this.#openPort().then(
        () => {
          if (this.#state === 'closed') return;
          this.#backoff.reset();
          this.#buttons.reset();
          this.counters.reconnects += 1;
          this.#setState('connected');
          this.#greet();
        },
        (err: unknown) => {
          this.#log.debug({ path: this.opts.path, err: toSweepError(err).message, delay }, 'serial panel not back yet');
          this.#scheduleReopen();
        },
      );
    }, delay);
  }

  /** After each (re)connection: ask for the panel's hello, then re-send every LED state (H2). */
  #greet(): void {
    this.#send({ type: 'hello', seq: this.#seq.next(), protocol: PROTOCOL_VERSION }).catch(() => undefined);
    this.#replayLeds();
  }

  #replayLeds(): void {
    for (const [led, pattern] of this.#leds) {
      this.#send({ type: 'led', seq: this.#seq.next(), led, pattern }).catch((err: unknown) =>
        this.#log.debug({ err: toSweepError(err).message }, 'LED state not re-sent'),
      );
    }
  }

  #heartbeat(): void {
    if (this.#state !== 'connected') return;
    this.#send({ type: 'heartbeat', seq: this.#seq.next() }).catch(() => undefined);
  }

  #send(m: HostMessage): Promise<void> {
    const port = this.#port;
    if (!port) return Promise.reject(new SweepError('OFFLINE', `serial panel ${this.opts.path} is disconnected`));
    const line = formatHost(m);
    return new Promise<void>((resolve, reject) => {
      const p: PendingWrite = { reject };
      this.#pending.add(p);
      port.write(line, 'ascii', (err) => {
        if (!this.#pending.delete(p)) return; // already rejected by close or loss
        if (err) reject(new SweepError('OFFLINE', `serial panel ${this.opts.path}: write failed: ${err.message}`, { cause: err }));
        else {
          this.counters.commandsSent += 1;
          resolve();
        }
      });
    });
  }

  #rejectPending(err: SweepError): void {
    for (const p of [...this.#pending]) p.reject(err);
    this.#pending.clear();
  }

  #onData(chunk: Buffer): void {
    if (this.#state === 'closed') return;
    for (const m of this.#decoder.push(chunk)) {
      this.counters.accepted += 1;
      this.lastHeardMono = this.#clock.mono();
      switch (m.type) {
        case 'hello':
          this.#info = { firmware: m.firmware, protocol: m.protocol };
          this.#log.info({ path: this.opts.path, ...this.#info }, 'panel hello');
          if (m.protocol !== PROTOCOL_VERSION) this.#log.warn({ theirs: m.protocol, ours: PROTOCOL_VERSION }, 'panel speaks another protocol version');
          // H2: a hello may mean the panel restarted behind an open port; LEDs are level-triggered.
          this.#buttons.reset();
          this.#replayLeds();
          break;
        case 'button':
          if (this.#buttons.accept(m.seq)) {
            this.#listeners.button({ button: m.button, action: m.action, seq: m.seq, atMono: this.#clock.mono() });
          }
          break;
        case 'heartbeat':
          break;
      }
    }
  }
}
