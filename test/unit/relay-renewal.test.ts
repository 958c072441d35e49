// L9: relayed links are remade when fresh TURN credentials arrive; a call's link once its call ends.
import t from 'tap';
import { RelayRenewal, RENEWED_REASON } from '../../core/link/relay-renewal.ts';
import type { PeerLink } from '../../core/link/peer-link.ts';
import { silentLogger } from '../../platform/log.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

/** Just what RelayRenewal reads and does on a link: its peer, whether it is closed, close(). */
class LinkStandIn {
  closedWith: string | undefined;
  constructor(readonly peerId: string, readonly relayed: boolean) {}
  get isClosed(): boolean {
    return this.closedWith !== undefined;
  }
  close(reason = 'closed'): void {
    this.closedWith ??= reason;
  }
}

void t.test('fresh credentials: idle relayed links are remade at once, direct ones kept, a call link after its call (L9)', async (t) => {
  const clock = new FakeClock();
  const links = [new LinkStandIn('handset', true), new LinkStandIn('intercom', true), new LinkStandIn('neighbour', false)];
  const inCall = new Set(['intercom']);
  const renewal = new RelayRenewal<PeerLink>({
    links: () => links as unknown as PeerLink[],
    relayed: (l) => (l as unknown as LinkStandIn).relayed,
    inUse: (peer) => inCall.has(peer),
    clock,
    log: silentLogger(),
    checkEveryMs: 1000,
  });
  t.teardown(() => renewal.close());
  await renewal.renew();
  t.equal(links[0]!.closedWith, RENEWED_REASON, 'the idle relayed link is remade');
  t.equal(links[2]!.closedWith, undefined, 'a direct link needs no TURN credentials and stays');
  clock.advance(5000);
  t.equal(links[1]!.closedWith, undefined, 'the call keeps its link while it runs');
  inCall.delete('intercom');
  clock.advance(1000);
  t.equal(links[1]!.closedWith, RENEWED_REASON, 'and the link is remade once the call ended');
  t.equal(clock.pending(), 0, 'no timer is left once every stale link is remade');
});

void t.test('a relayed link that closed by itself meanwhile is forgotten, not closed again (L9)', async (t) => {
  const clock = new FakeClock();
  const link = new LinkStandIn('intercom', true);
  let inUse = true;
  const renewal = new RelayRenewal<PeerLink>({ links: () => [link as unknown as PeerLink], relayed: () => true, inUse: () => inUse, clock, log: silentLogger() });
  t.teardown(() => renewal.close());
  await renewal.renew();
  link.close('peer silent for 2500 ms (L5)');
  inUse = false;
  clock.advance(2000);
  t.equal(link.closedWith, 'peer silent for 2500 ms (L5)');
  t.equal(clock.pending(), 0);
});
