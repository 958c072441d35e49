// Issue 17 item 2: a peer whose links keep failing is retried with back-off, and the reason is kept.
import t from 'tap';
import { LinkSet } from '../../core/link/link-set.ts';
import { PeerLink, type LinkTransport } from '../../core/link/peer-link.ts';
import { SweepError } from '../../core/errors.ts';
import { silentLogger } from '../../platform/log.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

/** The phone page's link set (it always offers) on a fake clock, with links over the given transports. */
function pageLinks(clock: FakeClock, transport: () => LinkTransport, extra: { idleCloseMs?: number; setupTimeoutMs?: number } = {}): LinkSet<PeerLink> {
  return new LinkSet<PeerLink>({
    selfId: 'a-phone',
    selfIsBrowser: true,
    signaller: { signal: async () => {} },
    clock,
    log: silentLogger(),
    ...extra,
    makeLink: (spec) =>
      new PeerLink({
        transport: transport(),
        expectedPeer: spec.peerId,
        certificate: () => '',
        instance: 'i',
        verifyCertificate: () => {
          throw new SweepError('UNAUTHORIZED', 'not in this test');
        },
        clock,
        log: spec.log,
        openTimeoutMs: spec.setupTimeoutMs,
      }),
  });
}

/** A transport whose ICE fails at once, as a phone behind a symmetric NAT without TURN does. */
class FailingTransport implements LinkTransport {
  readonly opened: Promise<void>;
  private closedFns: Array<(r: string) => void> = [];
  constructor(clock: FakeClock, private readonly ok: () => boolean) {
    this.opened = new Promise((resolve) => {
      if (ok()) resolve();
    });
    if (!ok()) clock.setTimeout(() => this.close('connection failed: ICE found no working candidate pair'), 100);
  }
  remoteFingerprint(): string | undefined {
    return undefined;
  }
  acceptSignal(): void {}
  sendText(): void {
    if (!this.ok()) throw new SweepError('CLOSED', 'ctl is not open');
  }
  onText(): void {}
  onClosed(fn: (r: string) => void): void {
    this.closedFns.push(fn);
  }
  close(reason = 'closed'): void {
    for (const fn of this.closedFns.splice(0)) fn(reason);
  }
}

void t.test('a sibling that cannot be reached is retried with back-off, not every second, and the reason is told (issue 17, L4)', async (t) => {
  const clock = new FakeClock();
  let attempts = 0;
  const links = pageLinks(clock, () => {
    attempts += 1;
    return new FailingTransport(clock, () => false);
  });
  t.teardown(() => links.close());
  const told: string[] = [];
  links.onLinkFailed((p) => told.push(`${p.attempts}: ${p.reason}`));
  links.pin('handset', 'sibling');
  for (let ms = 0; ms < 60_000; ms += 50) {
    clock.advance(50);
    await Promise.resolve();
    await Promise.resolve();
  }
  // Full jitter (waits from 0 up to 1 s, 2 s, 4 s… 30 s): 7 to 10 attempts mostly, more than 17 about once in a million runs.
  t.ok(attempts >= 4 && attempts <= 20, `${attempts} attempts in 60 s (every second would be 60)`);
  const problem = links.problem('handset');
  t.match(problem?.reason, /no working candidate pair/, 'the reason is kept');
  t.equal(problem?.attempts, told.length, 'every failure is told');
  t.equal(told.length, attempts);
});

/** A transport that opens only when told to, as a relayed set-up that takes over a second. */
class SlowTransport implements LinkTransport {
  readonly opened: Promise<void>;
  private closedFns: Array<(r: string) => void> = [];
  closedWith: string | undefined;
  constructor() {
    this.opened = new Promise(() => {});
  }
  remoteFingerprint(): string | undefined {
    return undefined;
  }
  acceptSignal(): void {}
  sendText(): void {}
  onText(): void {}
  onClosed(fn: (r: string) => void): void {
    this.closedFns.push(fn);
  }
  close(reason = 'closed'): void {
    this.closedWith ??= reason;
    for (const fn of this.closedFns.splice(0)) fn(reason);
  }
}

void t.test('a link still being set up is not closed as idle, however short the idle time (L3)', async (t) => {
  const clock = new FakeClock();
  const transports: SlowTransport[] = [];
  const links = pageLinks(
    clock,
    () => {
      const transport = new SlowTransport();
      transports.push(transport);
      return transport;
    },
    { idleCloseMs: 1000, setupTimeoutMs: 8000 },
  );
  t.teardown(() => links.close());
  links.get('intercom').catch(() => undefined);
  clock.advance(3000);
  t.equal(transports[0]?.closedWith, undefined, 'three idle periods later the set-up still runs');
  clock.advance(6000);
  for (let i = 0; i < 5; i++) await Promise.resolve();
  t.match(transports[0]?.closedWith, /within 8000 ms/, 'it ends at its own set-up deadline, for that reason');
});
