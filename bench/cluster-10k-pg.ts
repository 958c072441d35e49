import type { Test } from 'tap';
import { startPostgres } from '../test/helpers/postgres.ts';
import { startNats } from '../test/helpers/nats.ts';
import { tenThousand } from './cluster-scale.ts';

/**
 * `npm run bench -- cluster-10k-pg`: `cluster`'s 10k figures for one cluster node, its state in a
 * PostgreSQL and its bus a NATS that run on this machine too (about 3 minutes; apart from
 * `cluster` to keep that one short).
 */
export async function run(): Promise<Record<string, unknown>> {
  const fns: Array<() => unknown> = [];
  const t = { teardown: (fn: () => unknown) => void fns.push(fn) } as unknown as Test;
  try {
    const pg = await startPostgres(t);
    const nats = await startNats(t);
    // The node reaches PostgreSQL through its Unix socket, as a node beside its database would
    // (SWEEP_BENCH_PG_TCP=1: loopback TCP). Over loopback TCP the kernel does the receiving end's
    // work of every query in the sending node's time, as no network between two machines would.
    const url = await pg.createDatabase('tenk');
    const tcp = process.env.SWEEP_BENCH_PG_TCP === '1';
    return { pgVia: tcp ? 'loopback TCP' : 'unix socket', ...(await tenThousand(t, { pgUrl: tcp ? url : pg.viaSocket(url), natsUrl: nats.url })) };
  } finally {
    for (const fn of fns.reverse()) await fn();
  }
}
