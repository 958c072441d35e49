import type { SignalPayload } from '../../core/protocol/access.ts';
import type { PeerTransport } from './transport.ts';

/**
 * A relay stand-in for tests and benchmarks: returns the `sendSignal` for each side, delivering
 * to the other side's `acceptSignal` asynchronously and in order, as the rendezvous relay does.
 * Transports are created first with these functions, then bound with `bind`.
 */
export function loopbackRelay(): {
  sendFromA: (p: SignalPayload) => void;
  sendFromB: (p: SignalPayload) => void;
  bind(a: PeerTransport, b: PeerTransport): void;
} {
  let a: PeerTransport | undefined;
  let b: PeerTransport | undefined;
  const pendingToA: SignalPayload[] = [];
  const pendingToB: SignalPayload[] = [];
  const deliver = (to: () => PeerTransport | undefined, queue: SignalPayload[], p: SignalPayload): void => {
    // setImmediate, not a microtask: a real relay hop is a network round, never re-entrant.
    setImmediate(() => {
      const target = to();
      if (target) target.acceptSignal(p);
      else queue.push(p);
    });
  };
  return {
    sendFromA: (p) => deliver(() => b, pendingToB, p),
    sendFromB: (p) => deliver(() => a, pendingToA, p),
    bind(ta, tb) {
      a = ta;
      b = tb;
      for (const p of pendingToA.splice(0)) ta.acceptSignal(p);
      for (const p of pendingToB.splice(0)) tb.acceptSignal(p);
    },
  };
}

/**
 * Wires two transports made with a relay's send functions and waits until both are open.
 * Rejects (and closes both) if either fails to open.
 */
export async function connectPair(
  relay: ReturnType<typeof loopbackRelay>,
  a: PeerTransport,
  b: PeerTransport,
): Promise<void> {
  relay.bind(a, b);
  try {
    await Promise.all([a.opened, b.opened]);
  } catch (err) {
    a.close('pair failed');
    b.close('pair failed');
    throw err;
  }
}
