import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { SignalPayload } from '../core/protocol/access.ts';
import type { AccessClient } from '../runtime/access/access-client.ts';
import { loadOrCreateKeys } from '../runtime/identity/keys.ts';
import { createPeerTransport } from '../runtime/p2p/peer-transport.ts';
import type { PeerTransport } from '../runtime/p2p/transport.ts';
import { silentLogger } from '../platform/log.ts';
import { percentile, round } from './stats.ts';

const LINKS = 30;

/**
 * Link set-up through the access server's relay (A5): a real node-datachannel link on 127.0.0.1
 * between `offerer` and `answerer` (logged in, buddies), from the creation of both ends until
 * `ctl` is open on both, every offer, answer and candidate relayed by the server — across two
 * cluster nodes when the clients are logged in on different ones. One link at a time.
 */
export async function linkSetupThroughRelay(
  offerer: { client: AccessClient; endpointId: string },
  answerer: { client: AccessClient; endpointId: string },
  tag: string,
): Promise<Record<string, number>> {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-bench-relay-link-'));
  const log = silentLogger();
  const ends = new Map<string, { a?: PeerTransport; b?: PeerTransport }>();
  const offAnswerer = answerer.client.onSignal((s) => ends.get(s.payload.linkId)?.b?.acceptSignal(s.payload));
  const offOfferer = offerer.client.onSignal((s) => ends.get(s.payload.linkId)?.a?.acceptSignal(s.payload));
  const relay = (from: AccessClient, to: string) => (p: SignalPayload) => void from.signal(to, p).catch(() => undefined);
  try {
    const [ka, kb] = await Promise.all([loadOrCreateKeys(join(dir, 'a')), loadOrCreateKeys(join(dir, 'b'))]);
    const times: number[] = [];
    let failures = 0;
    for (let i = 0; i < LINKS; i++) {
      const linkId = `${tag}-link-${i}`;
      const common = { linkId, bindAddress: '127.0.0.1', openTimeoutMs: 5000 };
      const pair: { a?: PeerTransport; b?: PeerTransport } = {};
      ends.set(linkId, pair);
      const t0 = performance.now();
      try {
        pair.b = createPeerTransport({ ...common, role: 'answerer', dtlsCertFile: kb.dtlsCertFile, dtlsKeyFile: kb.dtlsKeyFile, sendSignal: relay(answerer.client, offerer.endpointId) }, log);
        pair.a = createPeerTransport({ ...common, role: 'offerer', dtlsCertFile: ka.dtlsCertFile, dtlsKeyFile: ka.dtlsKeyFile, sendSignal: relay(offerer.client, answerer.endpointId) }, log);
        await Promise.all([pair.a.opened, pair.b.opened]);
        times.push(performance.now() - t0);
      } catch {
        failures++;
      } finally {
        pair.a?.close();
        pair.b?.close();
        ends.delete(linkId);
      }
    }
    return { linkSetupP50Ms: round(percentile(times, 0.5), 1), linkSetupP95Ms: round(percentile(times, 0.95), 1), linkFailures: failures };
  } finally {
    offAnswerer();
    offOfferer();
    await rm(dir, { recursive: true, force: true });
  }
}
