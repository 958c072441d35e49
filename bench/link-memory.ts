import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadOrCreateKeys, type EndpointKeys } from '../runtime/identity/keys.ts';
import { connectPair, loopbackRelay } from '../runtime/p2p/loopback-pair.ts';
import { createPeerTransport } from '../runtime/p2p/peer-transport.ts';
import type { PeerTransport } from '../runtime/p2p/transport.ts';
import { silentLogger, type Logger } from '../platform/log.ts';

const mb = (bytes: number): number => Math.round((bytes / 1048576) * 100) / 100;

async function settledRss(): Promise<number> {
  (globalThis as { gc?: () => void }).gc?.();
  await sleep(300);
  return process.memoryUsage().rss;
}

async function openLink(i: number, ka: EndpointKeys, kb: EndpointKeys, log: Logger): Promise<PeerTransport[]> {
  const relay = loopbackRelay();
  const common = { linkId: `mem-${i}`, bindAddress: '127.0.0.1', openTimeoutMs: 5000 };
  const a = createPeerTransport({ ...common, role: 'offerer', dtlsCertFile: ka.dtlsCertFile, dtlsKeyFile: ka.dtlsKeyFile, sendSignal: relay.sendFromA }, log);
  const b = createPeerTransport({ ...common, role: 'answerer', dtlsCertFile: kb.dtlsCertFile, dtlsKeyFile: kb.dtlsKeyFile, sendSignal: relay.sendFromB }, log);
  await connectPair(relay, a, b);
  return [a, b];
}

/**
 * RSS growth per idle link (ctl + Opus track, no audio flowing). Both ends live in this process,
 * so one link costs two PeerConnections here; `mbPerEnd` is what one endpoint pays per link.
 */
export async function run(opts: { links?: number } = {}): Promise<Record<string, unknown>> {
  const links = opts.links ?? 50;
  const dir = await mkdtemp(join(tmpdir(), 'sweep-bench-mem-'));
  const log = silentLogger();
  const open: PeerTransport[] = [];
  try {
    const [ka, kb] = await Promise.all([loadOrCreateKeys(join(dir, 'a')), loadOrCreateKeys(join(dir, 'b'))]);
    // One link first, closed again: loads libdatachannel, its threads and OpenSSL state.
    for (const t of await openLink(-1, ka, kb, log)) t.close();
    const before = await settledRss();
    for (let i = 0; i < links; i++) open.push(...(await openLink(i, ka, kb, log)));
    const after = await settledRss();
    const perLink = (after - before) / links;
    return {
      bench: 'link-memory',
      links,
      mbPerLink: mb(perLink),
      mbPerEnd: mb(perLink / 2),
      rssBeforeMb: mb(before),
      rssAfterMb: mb(after),
    };
  } finally {
    for (const t of open) t.close();
    await rm(dir, { recursive: true, force: true });
  }
}
