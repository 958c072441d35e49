import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateKeys } from '../runtime/identity/keys.ts';
import { connectPair, loopbackRelay } from '../runtime/p2p/loopback-pair.ts';
import { createPeerTransport, type SetupRecipe } from '../runtime/p2p/peer-transport.ts';
import type { PeerTransport } from '../runtime/p2p/transport.ts';
import { silentLogger } from '../platform/log.ts';

const STALL_MS = 200;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

/**
 * Link set-up time: creation of both ends → `ctl` open on both, over an in-process relay on
 * 127.0.0.1, one link at a time, each closed before the next. A set-up over 200 ms is a stall.
 */
export async function run(opts: { n?: number; recipe?: SetupRecipe } = {}): Promise<Record<string, unknown>> {
  const n = opts.n ?? 100;
  const dir = await mkdtemp(join(tmpdir(), 'sweep-bench-link-'));
  const log = silentLogger();
  try {
    const [ka, kb] = await Promise.all([loadOrCreateKeys(join(dir, 'a')), loadOrCreateKeys(join(dir, 'b'))]);
    const times: number[] = [];
    let failures = 0;
    for (let i = 0; i < n; i++) {
      const relay = loopbackRelay();
      const linkId = `bench-${i}`;
      const common = { linkId, bindAddress: '127.0.0.1', openTimeoutMs: 5000 };
      const t0 = performance.now();
      let a: PeerTransport | undefined;
      let b: PeerTransport | undefined;
      try {
        a = createPeerTransport({ ...common, role: 'offerer', dtlsCertFile: ka.dtlsCertFile, dtlsKeyFile: ka.dtlsKeyFile, sendSignal: relay.sendFromA }, log, { recipe: opts.recipe });
        b = createPeerTransport({ ...common, role: 'answerer', dtlsCertFile: kb.dtlsCertFile, dtlsKeyFile: kb.dtlsKeyFile, sendSignal: relay.sendFromB }, log, { recipe: opts.recipe });
        await connectPair(relay, a, b);
        times.push(performance.now() - t0);
      } catch {
        failures++;
      } finally {
        a?.close();
        b?.close();
      }
    }
    const sorted = [...times].sort((x, y) => x - y);
    const r2 = (x: number): number => Math.round(x * 100) / 100;
    return {
      bench: 'link-setup',
      recipe: opts.recipe ?? 'default',
      n,
      p50Ms: r2(percentile(sorted, 0.5)),
      p95Ms: r2(percentile(sorted, 0.95)),
      maxMs: r2(sorted.at(-1) ?? NaN),
      stalls: times.filter((t) => t > STALL_MS).length,
      failures,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
