import { readFileSync } from 'node:fs';
import mqtt, { type IClientPublishOptions, type MqttClient } from 'mqtt';
import type { DiagnosticsConfig } from '../../firmware-config/diagnostics-config.ts';
import { peekToken, verifyToken } from '../../platform/token.ts';
import { systemClock, delay, type Clock, type TimerHandle } from '../../core/clock.ts';
import { toSweepError } from '../../core/errors.ts';
import type { LevelControl, LogRing } from '../util/log-ring.ts';
import type { Logger } from '../../platform/log.ts';
import { OperatorAuth, SignedShellInput } from './auth.ts';
import { CommandHandler, type CommandResponse } from './commands.ts';
import { brokerOptions, noDelay } from './connection.ts';
import { configProblems } from './config-check.ts';
import { EventMapper, type DiagEvent } from './events.ts';
import { DOOR_BUTTON_PRESS, discoveryMessages, doorButtonConfigTopic } from './home-assistant.ts';
import type { ObservedEndpoint } from './observed.ts';
import { Outbox } from './outbox.ts';
import { ShellHost, type SpawnPty } from './shell.ts';
import { SessionCounter, mustReassert, readState, statePayload } from './state.ts';
import { TelemetrySampler, type SamplerDeps } from './telemetry.ts';
import { DeviceTopics } from './topics.ts';

export const NS_DIAG = 'diagnostics:mqtt';

/** Commands handled at once; more are answered BUSY (a flood cannot pile work up on the device). */
export const MAX_COMMANDS_IN_FLIGHT = 8;

function busyResponse(payload: Buffer): CommandResponse {
  let correlationId: string | undefined;
  try {
    const v = (JSON.parse(payload.toString('utf8')) as { correlationId?: unknown }).correlationId;
    if (typeof v === 'string' && v.length <= 128) correlationId = v;
  } catch {
    // no usable id
  }
  return { ...(correlationId ? { correlationId } : {}), status: 'error', error: { code: 'BUSY', message: `${MAX_COMMANDS_IN_FLIGHT} commands already running; retry` } };
}

export interface DiagnosticsDeps {
  log: Logger;
  clock?: Clock;
  /** `restart`: default exits the process with the code (systemd starts it again). */
  restart?: (code: number, reason: string) => void;
  /** Recent log lines for `getLogs`. */
  logRing?: LogRing;
  /** Changes every logger's level for `setLogLevel`; default changes `log` only. */
  levels?: LevelControl;
  /** Defaults to node-pty. */
  spawnPty?: () => Promise<SpawnPty>;
  telemetry?: Partial<Pick<SamplerDeps, 'cpuUsage' | 'memoryUsage' | 'readTemperature'>>;
  /**
   * The intercom's door relay (the panel controller's `door`), for the opt-in Home Assistant door
   * button (Q16); absent when the device has no panel relay (presses are then refused).
   */
  door?: { pulseLocal(by: string): Promise<void> };
}

/** Who a Home Assistant door button press is said to come from (logs, `door.*` events). */
export const DOOR_BY_HOME_ASSISTANT = 'homeAssistant';

export interface Diagnostics {
  readonly topics: DeviceTopics;
  /** True while connected to the broker. */
  readonly connected: boolean;
  /** The current connection's session number (Q4). */
  readonly session: number;
  /** Events waiting for the broker. */
  readonly outboxSize: number;
  /** Publishes one telemetry sample now (also done every telemetryIntervalMs). */
  publishTelemetry(): Promise<void>;
  close(): Promise<void>;
}

function runtimeVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * Remote diagnostics over MQTT: a leaf that listens to the endpoint's bus and answers commands
 * (docs/mqtt.md). It never blocks or crashes the endpoint: it resolves without waiting for the
 * broker, keeps events in a bounded outbox while the broker is unreachable, and turns every
 * failure into a log line or an error response. Rejects only when its own config cannot be used
 * (a password or TLS file that cannot be read): failing to start is told apart from dying later.
 */
export async function startDiagnostics(endpoint: ObservedEndpoint, config: DiagnosticsConfig, deps: DiagnosticsDeps): Promise<Diagnostics> {
  const clock = deps.clock ?? systemClock;
  const log = deps.log.child({ ns: NS_DIAG });
  const deviceId = config.deviceId ?? endpoint.id;
  const topics = new DeviceTopics(config.topicPrefix, deviceId);
  const options = await brokerOptions({ ...config, clientId: config.clientId ?? `sweep-${deviceId}` });
  const version = runtimeVersion();
  const owner = {};
  const sessions = new SessionCounter(() => clock.now());
  let session = sessions.next();
  const willPayload = (s: number) => Buffer.from(JSON.stringify(statePayload('lost', s, clock.now())));
  options.will = { topic: topics.state, payload: willPayload(session), qos: 1, retain: true };

  const outbox = new Outbox<DiagEvent>(config.outboxSize);
  const auth = new OperatorAuth(config.operatorKeys, deviceId, config.maxCommandLifetimeMs);
  let closed = false;
  let restartTimer: TimerHandle | undefined;
  // Q16: the door button is listened to only when opted in; offered to Home Assistant only with a relay.
  const doorButton = config.homeAssistant.enabled && config.homeAssistant.doorButton;
  const door = deps.door;
  if (doorButton && !door) log.warn('homeAssistant.doorButton on a device without a panel relay: presses will be refused');

  const client: MqttClient = mqtt.connect(config.url, options);
  // Errors come with a reconnect: log them (without secrets), never let them throw.
  // Said once at warn level, then at debug until the next successful connection (no log flood).
  let errorsSinceConnect = 0;
  client.on('error', (err) => {
    // A write that raced our own shutdown is no broker trouble: an operator would chase it for nothing.
    if (closed) return;
    errorsSinceConnect += 1;
    log[errorsSinceConnect === 1 ? 'warn' : 'debug']({ code: (err as { code?: unknown }).code, message: err.message }, 'broker error; retrying');
  });

  const publish = (topic: string, payload: string | Buffer, opts: IClientPublishOptions): Promise<void> =>
    client.publishAsync(topic, payload, opts).then(
      () => undefined,
      (err: unknown) => log.debug({ topic, message: toSweepError(err).message }, 'publish failed'),
    );

  const sendEvent = (e: DiagEvent) => {
    if (closed) return;
    if (!client.connected) {
      outbox.push(e);
      return;
    }
    void publish(topics.event(e.type), JSON.stringify(e), { qos: 1 });
  };
  const events = new EventMapper(() => clock.now(), sendEvent);
  events.attach(endpoint.bus, owner);
  for (const problem of configProblems(config)) {
    log.warn(problem, 'diagnostics config problem');
    events.make('config.problem', { ...problem });
  }
  const sampler = new TelemetrySampler(endpoint, events, () => outbox.size, { mono: () => clock.mono(), now: () => clock.now(), ...deps.telemetry });

  const shellCfg = config.shell;
  const shell = shellCfg.enabled
    ? new ShellHost(
        { command: shellCfg.command, idleTimeoutMs: shellCfg.idleTimeoutMs, maxBytesPerSecond: shellCfg.maxBytesPerSecond, ...(shellCfg.user ? { user: shellCfg.user } : {}) },
        {
          clock,
          log,
          spawn: deps.spawnPty ?? (async () => (await import('node-pty')).spawn),
          output: (s, data) => {
            if (client.connected) void publish(topics.shellOut(s), data, { qos: 0 });
          },
          closed: (s, reason, exitCode) => events.make('shell.closed', { session: s, reason, ...(exitCode !== undefined ? { exitCode } : {}) }),
        },
      )
    : undefined;

  const commands = new CommandHandler({
    endpoint,
    auth,
    shell,
    logRing: deps.logRing,
    getLogLevel: () => deps.levels?.level ?? deps.log.level,
    setLogLevel: (level) => {
      log.warn({ level }, 'log level changed by an operator');
      if (deps.levels) deps.levels.set(level);
      else deps.log.level = level;
    },
    restart: (code, reason) => {
      log.warn({ reason, code }, 'restart requested by an operator');
      // Let the response leave first.
      restartTimer = clock.setTimeout(() => (deps.restart ?? ((c: number) => process.exit(c)))(code, reason), 300);
    },
    now: () => clock.now(),
    mono: () => clock.mono(),
    session: () => session,
    shellTopics: (s) => ({ in: topics.shellIn(s), out: topics.shellOut(s) }),
    wait: (ms) => delay(clock, ms),
  });

  let inFlight = 0;
  const respond = (res: CommandResponse, props: { responseTopic?: string | undefined; correlationData?: Buffer | undefined }) => {
    // Q3: MQTT 5 response topic (if it is this device's) and correlation data; the payload field otherwise.
    const topic = props.responseTopic && topics.isOwnResponseTopic(props.responseTopic) ? props.responseTopic : topics.response;
    const opts: IClientPublishOptions = { qos: 1 };
    if (config.protocolVersion === 5 && props.correlationData) opts.properties = { correlationData: props.correlationData };
    void publish(topic, JSON.stringify(res), opts);
  };

  /** Q16: a Home Assistant door button press: no operator signature, the relay's guard time (D3) only. */
  const onDoorButton = (payload: Buffer, retained: boolean) => {
    const refuse = (code: string, message: string) => {
      log.warn({ by: DOOR_BY_HOME_ASSISTANT, code, reason: message }, 'door button press refused');
      events.make('door.refused', { by: DOOR_BY_HOME_ASSISTANT, ok: false, code, message });
    };
    // A retained press would open the door again at every reconnect.
    if (retained) return refuse('INVALID_MESSAGE', 'a retained door button press is ignored (it would replay at every reconnect)');
    if (payload.toString('utf8') !== DOOR_BUTTON_PRESS) return refuse('INVALID_MESSAGE', `door button payload must be "${DOOR_BUTTON_PRESS}"`);
    if (!door) return refuse('NOT_FOUND', 'no panel relay on this device: the door button does nothing (D2)');
    log.warn({ by: DOOR_BY_HOME_ASSISTANT }, 'door button pressed in Home Assistant');
    // The relay tells door.opened / door.refused on the bus itself.
    door.pulseLocal(DOOR_BY_HOME_ASSISTANT).catch((err: unknown) => {
      const e = toSweepError(err);
      log.warn({ by: DOOR_BY_HOME_ASSISTANT, code: e.code, reason: e.message }, 'door not opened');
    });
  };

  const onShellInput = (sessionId: string, payload: Buffer) => {
    try {
      const current = shell?.current;
      if (!current || current.id !== sessionId) return;
      const token = payload.toString('utf8');
      const claimed = peekToken(token, SignedShellInput, 'shell input');
      const input = verifyToken(token, auth.operatorKey(claimed.key), SignedShellInput, 'shell input');
      if (input.key !== current.operatorKey || input.session !== sessionId || input.device !== deviceId) {
        log.warn({ session: sessionId }, 'shell input from another key or for another session refused');
        return;
      }
      shell.input(sessionId, input.seq, Buffer.from(input.data, 'base64'));
    } catch (err) {
      log.warn({ session: sessionId, code: toSweepError(err).code, message: toSweepError(err).message }, 'shell input refused');
    }
  };

  client.on('message', (topic, payload, packet) => {
    if (closed) return;
    try {
      if (topic === topics.command) {
        const props = packet.properties ?? {};
        if (inFlight >= MAX_COMMANDS_IN_FLIGHT) {
          respond(busyResponse(payload), { responseTopic: props.responseTopic, correlationData: props.correlationData });
          return;
        }
        inFlight += 1;
        void commands.handle(payload).then((res) => {
          inFlight -= 1;
          if (res.status === 'error') log.info({ command: res.command, code: res.error.code }, 'command refused');
          respond(res, { responseTopic: props.responseTopic, correlationData: props.correlationData });
        });
      } else if (doorButton && topic === topics.doorButton) {
        onDoorButton(payload, packet.retain);
      } else if (topic === topics.state) {
        if (mustReassert(readState(payload), session)) publishOnline();
      } else {
        const s = topics.shellSessionOf(topic);
        if (s) onShellInput(s, payload);
      }
    } catch (err) {
      log.error({ err, topic }, 'diagnostics message handler failed');
    }
  });

  const publishOnline = () => void publish(topics.state, JSON.stringify(statePayload('online', session, clock.now(), version)), { qos: 1, retain: true });

  client.on('connect', () => {
    if (closed) return;
    noDelay(client);
    errorsSinceConnect = 0;
    log.info({ url: config.url, session }, 'connected to the broker');
    publishOnline();
    const subs = [topics.command, topics.state, ...(shell ? [topics.shellInFilter] : []), ...(doorButton ? [topics.doorButton] : [])];
    client.subscribe(subs, { qos: 1 }, (err) => {
      if (err) log.warn({ message: err.message }, 'subscribe failed');
    });
    const dropped = outbox.takeDropped();
    if (dropped > 0) events.make('diagnostics.dropped', { events: dropped });
    for (const e of outbox.drain()) void publish(topics.event(e.type), JSON.stringify(e), { qos: 1 });
    if (config.homeAssistant.enabled) {
      const ha = config.homeAssistant;
      const offerDoor = doorButton && door !== undefined;
      for (const m of discoveryMessages(topics, { discoveryPrefix: ha.discoveryPrefix, label: endpoint.config.endpoint.label, kind: endpoint.config.endpoint.kind, version, doorButton: offerDoor })) {
        void publish(m.topic, JSON.stringify(m.payload), { qos: 1, retain: true });
      }
      // A door button offered before (the option since turned off) is removed from Home Assistant.
      if (!offerDoor) void publish(doorButtonConfigTopic(topics, ha.discoveryPrefix), '', { qos: 1, retain: true });
    }
    void publishTelemetry();
  });
  client.on('close', () => {
    if (closed) return;
    // Q4: the next connection gets a new session number, carried by its will as well.
    session = sessions.next();
    if (client.options.will) client.options.will.payload = willPayload(session);
  });

  async function publishTelemetry(): Promise<void> {
    if (closed || !client.connected) return;
    try {
      const sample = await sampler.sample();
      await publish(topics.telemetry, JSON.stringify(sample), { qos: 0 });
    } catch (err) {
      log.warn({ message: toSweepError(err).message }, 'telemetry sample failed');
    }
  }
  const telemetryTimer: TimerHandle = clock.setInterval(() => void publishTelemetry(), config.telemetryIntervalMs);

  return {
    topics,
    get connected() {
      return client.connected;
    },
    get session() {
      return session;
    },
    get outboxSize() {
      return outbox.size;
    },
    publishTelemetry,
    async close() {
      if (closed) return;
      closed = true;
      endpoint.bus.removeOwner(owner);
      clock.clear(telemetryTimer);
      if (restartTimer) clock.clear(restartTimer);
      shell?.close();
      if (client.connected) {
        // A clean goodbye: `offline` replaces the will (which the broker drops on DISCONNECT).
        const offline = publish(topics.state, JSON.stringify(statePayload('offline', session, clock.now())), { qos: 1, retain: true });
        await Promise.race([offline, new Promise((r) => setTimeout(r, 1000).unref())]);
      }
      const ended = await Promise.race([client.endAsync().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1000).unref())]);
      if (!ended) client.end(true);
      log.info('diagnostics closed');
    },
  };
}
