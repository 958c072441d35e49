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
    return await tenThousand(t, { pgUrl: await pg.createDatabase('tenk'), natsUrl: nats.url });
  } finally {
    for (const fn of fns.reverse()) await fn();
  }
}
