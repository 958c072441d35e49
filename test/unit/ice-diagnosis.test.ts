// L8: why a link found no path, in words, from what ICE gathered and heard (issue 17).
import t from 'tap';
import { diagnoseIce } from '../../core/link/ice-diagnosis.ts';
import { PeerLink, type LinkTransport } from '../../core/link/peer-link.ts';
import { SweepError } from '../../core/errors.ts';
import { silentLogger } from '../../platform/log.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

const host = { type: 'host' };

void t.test('TURN servers given but no relay address gathered: the relay is unreachable or refused the credentials', async (t) => {
  t.match(diagnoseIce({ turnServers: 2, local: [host], checksSent: 4, responsesReceived: 0 }), /TURN relay gave this phone no address/);
});

void t.test('only relays reached over TCP or TLS, nothing over UDP: says UDP is blocked and the devices cannot answer', async (t) => {
  const why = diagnoseIce({ turnServers: 2, local: [host, { type: 'relay', relayProtocol: 'tcp' }, { type: 'relay', relayProtocol: 'tls' }], checksSent: 9, responsesReceived: 0 });
  t.match(why, /UDP is blocked/);
  t.match(why, /TURN\/TCP or TLS/);
});

void t.test('a UDP relay or a server-reflexive address means UDP works: no UDP verdict', async (t) => {
  t.notMatch(diagnoseIce({ turnServers: 1, local: [host, { type: 'relay', relayProtocol: 'tcp' }, { type: 'relay', relayProtocol: 'udp' }], checksSent: 9, responsesReceived: 0 }) ?? '', /UDP is blocked/);
  t.notMatch(diagnoseIce({ turnServers: 1, local: [host, { type: 'srflx' }, { type: 'relay', relayProtocol: 'tcp' }], checksSent: 9, responsesReceived: 0 }) ?? '', /UDP is blocked/);
});

void t.test('checks unanswered: names whether a TURN relay was even configured', async (t) => {
  t.match(diagnoseIce({ turnServers: 0, local: [host, { type: 'srflx' }], checksSent: 6, responsesReceived: 0 }), /no TURN relay is configured/);
  t.match(diagnoseIce({ turnServers: 1, local: [host, { type: 'relay', relayProtocol: 'udp' }], checksSent: 6, responsesReceived: 0 }), /not even through the TURN relay/);
});

void t.test('nothing to add while checks are answered or none were sent yet', async (t) => {
  t.equal(diagnoseIce({ turnServers: 1, local: [host, { type: 'relay', relayProtocol: 'udp' }], checksSent: 6, responsesReceived: 2 }), undefined);
  t.equal(diagnoseIce({ turnServers: 0, local: [host], checksSent: 0, responsesReceived: 0 }), undefined);
});

/** A transport whose ICE never finds a path; `diagnose` says why (or never answers). */
class StuckTransport implements LinkTransport {
  readonly opened = new Promise<void>(() => {});
  closedWith: string | undefined;
  constructor(readonly diagnose: () => Promise<string | undefined>) {}
  remoteFingerprint(): string | undefined {
    return undefined;
  }
  acceptSignal(): void {}
  sendText(): void {}
  onText(): void {}
  onClosed(): void {}
  close(reason = 'closed'): void {
    this.closedWith = reason;
  }
}

function stuckLink(clock: FakeClock, transport: StuckTransport): PeerLink {
  return new PeerLink({
    transport,
    expectedPeer: 'handset',
    certificate: () => '',
    instance: 'i',
    verifyCertificate: () => {
      throw new SweepError('UNAUTHORIZED', 'not in this test');
    },
    clock,
    log: silentLogger(),
    openTimeoutMs: 8000,
  });
}

void t.test('a link that finds no path within its deadline is closed with the transport\'s diagnosis in the reason (L8)', async (t) => {
  const clock = new FakeClock();
  const transport = new StuckTransport(async () => 'this network lets calls out only over TURN/TCP or TLS (UDP is blocked), which the devices cannot answer yet');
  const link = stuckLink(clock, transport);
  const failed = link.ready.then(() => 'opened', (err: Error) => err.message);
  clock.advance(8000);
  for (let i = 0; i < 5; i += 1) await Promise.resolve();
  t.equal(await failed, 'no link to handset opened within 8000 ms: this network lets calls out only over TURN/TCP or TLS (UDP is blocked), which the devices cannot answer yet');
  t.match(transport.closedWith, /UDP is blocked/, 'and the transport is closed with it');
});

void t.test('a diagnosis that does not come in time leaves the bare reason (L8)', async (t) => {
  const clock = new FakeClock();
  const link = stuckLink(clock, new StuckTransport(() => new Promise(() => {})));
  const failed = link.ready.then(() => 'opened', (err: Error) => err.message);
  clock.advance(8000);
  await Promise.resolve();
  clock.advance(500);
  t.equal(await failed, 'no link to handset opened within 8000 ms');
});
