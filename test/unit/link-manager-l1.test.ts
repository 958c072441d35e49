import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { LinkManager, type Signaller } from '../../runtime/p2p/link-manager.ts';
import type { PeerTransport, TransportOptions } from '../../runtime/p2p/transport.ts';
import type { SignalPayload } from '../../core/protocol/access.ts';
import type { EndpointKind } from '../../core/protocol/common.ts';
import { silentLogger } from '../../platform/log.ts';
import { SweepError } from '../../core/errors.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

/** A transport that records how it was made and never opens. */
function stubTransport(opts: TransportOptions): PeerTransport & { signals: SignalPayload[] } {
  const signals: SignalPayload[] = [];
  let closed: ((r: string) => void) | undefined;
  return {
    linkId: opts.linkId,
    role: opts.role,
    opened: new Promise<void>(() => undefined),
    signals,
    remoteFingerprint: () => undefined,
    acceptSignal: (p) => void signals.push(p),
    sendText: () => undefined,
    onText: () => undefined,
    sendAudio: () => undefined,
    onAudio: () => undefined,
    onClosed: (fn) => {
      closed = fn;
    },
    isOpen: false,
    close: (reason = 'closed') => closed?.(reason),
  };
}

function manager(selfId: string, kinds: Record<string, EndpointKind>, signal?: Signaller['signal']) {
  const sent: Array<{ to: string; payload: SignalPayload }> = [];
  const made: Array<{ role: string; linkId: string }> = [];
  const clock = new FakeClock();
  const lm = new LinkManager({
    selfId,
    signaller: { signal: signal ?? (async (to, payload) => void sent.push({ to, payload })) },
    createTransport: (opts) => {
      made.push({ role: opts.role, linkId: opts.linkId });
      return stubTransport(opts);
    },
    bindAddress: '127.0.0.1',
    dtlsCertFile: '/nonexistent',
    dtlsKeyFile: '/nonexistent',
    certificate: () => '',
    instance: 'test-instance',
    serverPublicKey: generateKeyPairSync('ed25519').publicKey,
    clock,
    log: silentLogger(),
    peerKind: (id) => kinds[id],
  });
  return { lm, sent, made, clock };
}

void t.test('link to a browser peer is never offered: the node asks with connect even when its id sorts first (L1)', async (t) => {
  const { lm, sent, made } = manager('aaa-node', { 'web-1': 'browser' });
  t.teardown(() => lm.close());
  lm.get('web-1').catch(() => undefined);
  await new Promise((r) => setImmediate(r));
  t.same(made, [], 'no offerer transport made');
  t.match(sent, [{ to: 'web-1', payload: { kind: 'connect' } }]);
  lm.acceptSignal('web-1', { kind: 'connect', linkId: 'x' });
  t.same(made, [], 'a connect from a browser makes no offer either');
});

void t.test('offer from a browser peer is answered even when the node id sorts first (L1)', async (t) => {
  const { lm, made } = manager('aaa-node', { 'web-1': 'browser' });
  t.teardown(() => lm.close());
  lm.acceptSignal('web-1', { kind: 'offer', linkId: 'l1', sdp: 'v=0' });
  t.same(made, [{ role: 'answerer', linkId: 'l1' }]);
});

void t.test('between node endpoints the id that sorts first still offers (L1)', async (t) => {
  const { lm, made } = manager('aaa-node', { 'zzz-node': 'intercom' });
  t.teardown(() => lm.close());
  lm.get('zzz-node').catch(() => undefined);
  t.match(made, [{ role: 'offerer' }]);
  lm.acceptSignal('zzz-node', { kind: 'offer', linkId: 'l2', sdp: 'v=0' });
  t.equal(made.length, 1, 'an offer from the peer that should answer is ignored');
});

void t.test('offer for a linked endpoint id from another account is ignored; the same account may replace its link (issue 12 item 4, P3)', async (t) => {
  const { lm, made } = manager('zzz-node', {});
  t.teardown(() => lm.close());
  lm.acceptSignal('aaa-node', { kind: 'offer', linkId: 'l1', sdp: 'v=0' }, 'alice');
  t.equal(made.length, 1, 'the first link is made');
  lm.acceptSignal('aaa-node', { kind: 'offer', linkId: 'l2', sdp: 'v=0' }, 'mallory');
  lm.acceptSignal('aaa-node', { kind: 'connect', linkId: 'l2' }, 'mallory');
  t.equal(made.length, 1, 'another account cannot replace it');
  lm.acceptSignal('aaa-node', { kind: 'offer', linkId: 'l3', sdp: 'v=0' }, 'alice');
  t.same(made.map((m) => m.linkId), ['l1', 'l3'], 'the same account may (its endpoint restarted)');
});

void t.test('get for a peer the relay says is offline rejects OFFLINE and leaves no wait behind (issue 12 item 1)', async (t) => {
  const { lm, clock } = manager('zzz-node', {}, () => Promise.reject(new SweepError('OFFLINE', 'signal.to: endpoint "aaa-node" is not online')));
  t.teardown(() => lm.close());
  const before = clock.pending();
  const err = (await lm.get('aaa-node').catch((e: unknown) => e)) as SweepError;
  t.equal(err.code, 'OFFLINE');
  t.equal(clock.pending(), before, 'no set-up timer is left to fire later');
  clock.advance(20_000); // an unhandled rejection here would fail the test run
});
