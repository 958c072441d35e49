import { randomBytes, sign, type KeyObject } from 'node:crypto';
import type { EndpointConfig } from '../firmware-config/endpoint-config.ts';
import type { AudioSink, AudioSource } from '../drivers/audio/audio.ts';
import { AccessClient, accessOptionsFromConfig } from './access/access-client.ts';
import { loadOrCreateKeys, type EndpointKeys } from './identity/keys.ts';
import { publicKeyFromRaw } from '../platform/token.ts';
import { MediaEngine } from './media/media-engine.ts';
import { LinkManager } from './p2p/link-manager.ts';
import { createPeerTransport } from './p2p/peer-transport.ts';
import type { EndpointInfo } from '../core/protocol/common.ts';
import type { LoginResult } from '../core/protocol/access.ts';
import { CallManager } from '../core/engine/call-manager.ts';
import type { EndpointEvents } from '../core/session/events.ts';
import { EventBus } from '../core/bus.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import { NS, type Logger } from '../platform/log.ts';
import { nodeCrypto } from '../platform/grant-crypto.ts';
import { webCrypto } from '../core/engine/webcrypto.ts';
import type { Crypto } from '../core/engine/ports.ts';
import { CallHistoryRecorder } from '../core/engine/call-history.ts';
import { HistoryReporter } from './access/history-reporter.ts';
import { RingNotifier } from './access/ring-notifier.ts';
import { KeptDoNotDisturb } from './state/do-not-disturb.ts';
import { NOBODY_HOME, playTone, toneFrames } from './media/signal-tone.ts';

export interface EndpointDeps {
  source: AudioSource;
  sink: AudioSink;
  log: Logger;
  clock?: Clock;
  /** Defaults to the node-datachannel transport; tests may pass another implementation. */
  createTransport?: typeof createPeerTransport;
  /** The engine's crypto port: node:crypto (the default) or WebCrypto, as the phone page uses (tests). */
  crypto?: 'node' | 'webcrypto';
}

/**
 * One endpoint: logs in, keeps links to siblings and (while needed) far ends, places and answers
 * calls, sweeps, and plays and captures audio through its drivers. Everything it does is told on
 * `bus` (EndpointEvents).
 */
export class Endpoint {
  readonly bus: EventBus<EndpointEvents>;
  readonly calls: CallManager;
  readonly links: LinkManager;
  readonly media: MediaEngine;
  /** New at every start of the process: a peer that sees a new one knows we restarted (L6). */
  readonly instance = randomBytes(9).toString('base64url');
  private readonly siblings = new Map<string, EndpointInfo>();
  /** Kinds of the endpoints presence told us about (L1: a browser peer always offers). */
  private readonly kinds = new Map<string, EndpointInfo['kind']>();
  private buddyAccounts = new Set<string>();
  /** A15: records the household calls this endpoint rings and reports them to the access server. */
  private readonly dnd: KeptDoNotDisturb;
  /** A signal tone playing on the idle speaker (H7's nobody home). */
  private tone: { stop(): void } | undefined;
  private readonly history: { recorder: CallHistoryRecorder; reporter: HistoryReporter; push: RingNotifier };
  private closed = false;

  private constructor(
    readonly config: EndpointConfig,
    readonly keys: EndpointKeys,
    readonly access: AccessClient,
    private readonly deps: EndpointDeps,
    private readonly clock: Clock,
    serverPublicKey: KeyObject,
    grantCrypto: Crypto,
  ) {
    const log = deps.log;
    this.bus = new EventBus<EndpointEvents>(log.child({ ns: NS.endpoint }));
    this.links = new LinkManager({
      selfId: config.endpoint.id,
      signaller: access,
      createTransport: deps.createTransport ?? createPeerTransport,
      bindAddress: config.network.bindAddress,
      dtlsCertFile: keys.dtlsCertFile,
      dtlsKeyFile: keys.dtlsKeyFile,
      // Links are only made after login, when the certificate exists.
      certificate: () => access.certificate ?? '',
      instance: this.instance,
      serverPublicKey,
      clock,
      log: log.child({ ns: NS.links }),
      idleCloseMs: config.links.idleCloseMs,
      setupTimeoutMs: config.links.setupTimeoutMs,
      inUse: (peerId) => this.calls.usesPeer(peerId),
      peerKind: (peerId) => this.kinds.get(peerId),
      ice: () => access.ice,
    });
    this.media = new MediaEngine({
      source: deps.source,
      sink: deps.sink,
      log: log.child({ ns: NS.media }),
      clock,
      jitter: config.audio.jitter,
      // Q15: rate-limited by the engine.
      onSinkError: (e) => this.bus.emit('driver.state', { driver: 'audio.sink', state: 'failed', message: e.message, counters: { failures: e.failures, total: e.total } }),
    });
    this.dnd = new KeptDoNotDisturb(this.bus, config.stateDir, config.calls.doNotDisturb, log);
    this.calls = new CallManager({
      self: { account: config.access.username, endpointId: config.endpoint.id, label: config.endpoint.label },
      isBuddy: (account) => this.buddyAccounts.has(account),
      crypto: grantCrypto,
      links: this.links,
      media: this.media,
      bus: this.bus,
      clock,
      log: log.child({ ns: NS.call }),
      sweepTimeoutMs: config.sweep.timeoutMs,
      ringTimeoutMs: config.calls.ringTimeoutMs,
      sweepInvites: config.sweep.invites,
      inviteTimeoutMs: config.sweep.inviteTimeoutMs,
      linkLossGraceMs: config.calls.linkLossGraceMs,
      doNotDisturb: this.dnd.initial,
      householdOf: (account) => this.householdOf(account),
      pushPreference: config.sweep.pushTo,
      onLoginSwept: () => {
        log.info('sweep with scope login: logging out (S11)');
        void this.access.close();
      },
    });
    this.history = {
      recorder: new CallHistoryRecorder(this.bus, clock, { endpointId: config.endpoint.id, label: config.endpoint.label }),
      reporter: new HistoryReporter(this.bus, access, log.child({ ns: NS.access }), config.stateDir),
      // A16: the access server pushes to the household's closed phone pages.
      push: new RingNotifier(this.bus, access, config.endpoint.label || config.endpoint.id, config.calls.ringTimeoutMs, log.child({ ns: NS.access })),
    };
    if (config.calls.nobodyHomeTone) this.playNobodyHome(clock, log);
    access.onSignal((s) => this.links.acceptSignal(s.from, s.payload, s.fromAccount));
    this.links.onLinkFailed((p) => this.bus.emit('link.failed', p));
    access.onIce(() => void this.links.renewRelayed());
    access.onProfile((login) => this.applyProfile(login));
    access.onPresence((info) => this.applyPresence(info));
    access.onConnectionChange((connected) => this.bus.emit('access.state', { connected }));
  }

  /** H7: a household ring that rang nobody (all busy, do not disturb or offline) is told at the door. */
  private playNobodyHome(clock: Clock, log: Logger): void {
    this.bus.on(this, 'ring.ended', (e) => {
      if (e.outcome !== 'missed' || e.rang.length > 0 || this.closed) return;
      this.tone?.stop();
      this.tone = playTone(this.deps.sink, toneFrames(NOBODY_HOME), clock, log);
    });
    // The next call owns the speaker.
    this.bus.on(this, 'call.state', (e) => {
      if (e.call.state !== 'ended') this.tone?.stop();
    });
  }

  /** Loads (or makes) the keys, logs in, and starts keeping links. Rejects if the first login fails. */
  static async start(config: EndpointConfig, deps: EndpointDeps): Promise<Endpoint> {
    const clock = deps.clock ?? systemClock;
    const keys = await loadOrCreateKeys(config.stateDir, config.endpoint.id);
    const access = new AccessClient({
      ...accessOptionsFromConfig(config, keys),
      // A15: reconnects prove the endpoint with its key instead of the password.
      signProof: (text) => sign(null, Buffer.from(text), keys.signingPrivateKey).toString('base64url'),
      log: deps.log.child({ ns: NS.access }),
      clock,
    });
    const grantCrypto =
      deps.crypto === 'webcrypto'
        ? webCrypto(await crypto.subtle.importKey('pkcs8', keys.signingPrivateKey.export({ format: 'der', type: 'pkcs8' }), { name: 'Ed25519' }, false, ['sign']))
        : nodeCrypto(keys.signingPrivateKey);
    const endpoint = new Endpoint(config, keys, access, deps, clock, publicKeyFromRaw(config.access.serverPublicKey), grantCrypto);
    try {
      const login = await access.start();
      endpoint.applyProfile(login);
    } catch (err) {
      await endpoint.close();
      throw err;
    }
    return endpoint;
  }

  get id(): string {
    return this.config.endpoint.id;
  }

  get account(): string {
    return this.config.access.username;
  }

  /** Online endpoints of the same account (A4). */
  siblingList(): EndpointInfo[] {
    return [...this.siblings.values()];
  }

  /** H1: the online endpoints of an account: our siblings, or a buddy's endpoints as presence keeps them (A4). */
  householdOf(account: string): EndpointInfo[] {
    if (account === this.account) return this.siblingList();
    return (this.access.profile?.buddies.find((b) => b.account === account)?.endpoints ?? []).filter((e) => e.online);
  }

  buddyList(): LoginResult['profile']['buddies'] {
    return this.access.profile?.buddies ?? [];
  }

  /** Idempotent: ends the call, closes links, logs out, releases the audio devices. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.calls.close();
    this.history.recorder.close();
    this.history.reporter.close();
    this.history.push.close();
    this.dnd.close();
    this.tone?.stop();
    this.links.close();
    await this.access.close();
    await this.media.close();
    await this.deps.source.close();
    await this.deps.sink.close();
    this.bus.removeOwner(this);
  }

  /**
   * Simulates a crash for fault tests: links drop without any goodbye message and the access
   * connection goes, but nothing is handed over.
   */
  async crash(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A dead process writes no more state: what is on disk now is what the restart finds.
    this.dnd.close();
    this.tone?.stop();
    this.history.reporter.close();
    this.links.close();
    await this.access.close();
    await this.media.close();
  }

  private applyProfile(login: LoginResult): void {
    this.buddyAccounts = new Set(login.profile.buddies.map((b) => b.account));
    for (const b of login.profile.buddies) for (const e of b.endpoints) this.kinds.set(e.endpointId, e.kind);
    for (const s of login.profile.siblings) this.applyPresence(s);
  }

  /** L3: siblings are linked ahead of need; a sibling going offline takes its link with it. */
  private applyPresence(info: EndpointInfo): void {
    if (info.online) this.kinds.set(info.endpointId, info.kind);
    this.bus.emit('presence', { endpoint: info });
    if (info.account !== this.account || info.endpointId === this.id) return;
    if (info.online) {
      this.siblings.set(info.endpointId, info);
      this.links.pin(info.endpointId, 'sibling');
    } else {
      this.siblings.delete(info.endpointId);
      this.links.unpin(info.endpointId, 'sibling');
    }
  }
}
