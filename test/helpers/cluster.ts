import type { Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessServer, type AccessServerOptions } from '../../server/access-server.ts';
import { migrateStore, type StoreLocation } from '../../server/store/open.ts';
import type { LoopbackNats } from './nats.ts';
import type { LoopbackPostgres } from './postgres.ts';

export interface TestCluster {
  nodes: AccessServer[];
  store: StoreLocation;
  bus: string;
  dataDir: string;
  /** Starts one more node on the same store, bus and server key. */
  addNode: (opts?: Partial<AccessServerOptions>) => Promise<AccessServer>;
}

/**
 * `count` access-server nodes in this process on one fresh PostgreSQL database and one NATS,
 * sharing one server key (one data dir), each on its own loopback port; closed at teardown.
 */
export async function startCluster(t: Test, pg: LoopbackPostgres, nats: LoopbackNats, count: number, opts: Partial<AccessServerOptions>): Promise<TestCluster> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sweep-cluster-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const store: StoreLocation = { kind: 'postgres', url: await pg.createDatabase('cluster') };
  await migrateStore(store);
  const nodes: AccessServer[] = [];
  const addNode = async (over: Partial<AccessServerOptions> = {}): Promise<AccessServer> => {
    const n = nodes.length;
    const server = await AccessServer.start({ dataDir, port: 0, store, bus: nats.url, nodeId: `node-${n}`, ...opts, ...over } as AccessServerOptions);
    t.teardown(() => server.close());
    nodes.push(server);
    return server;
  };
  // One after another: the first creates the server key the others read.
  for (let n = 0; n < count; n++) await addNode();
  return { nodes, store, bus: nats.url, dataDir, addNode };
}
