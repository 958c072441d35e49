// The NAT tests' building (issue 17): the access server and coturn on the public side, the flat's
// intercom and handset behind the home router, the phone on mobile data behind a symmetric NAT.
import type { Test } from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeNatNet, type NatNet } from './nat-net.ts';
import { ProcessWorld } from '../../lab/process-world.ts';
import type { ChildEndpoint } from '../../lab/child-endpoint.ts';

export interface Flat {
  net: NatNet;
  world: ProcessWorld;
  intercom: ChildEndpoint;
  handset: ChildEndpoint;
  /** The simulated phone (a Node endpoint on the mobile network), unless the test brings its own. */
  phone: ChildEndpoint;
}

export type Path = { local: string; remote: string; transport: string } | null;
export const pathTo = async (e: ChildEndpoint, peer: string): Promise<Path> => ((await e.command({ cmd: 'state' })).paths as Record<string, Path>)[peer] ?? null;

/** The access server and coturn on the public side, intercom and handset at home, the phone on mobile data. */
export async function flat(t: Test, serverFlags: (net: NatNet, secretFile: string) => string[], before?: (net: NatNet) => Promise<void>, opts: { nodePhone?: boolean } = {}): Promise<Flat> {
  const net = await makeNatNet();
  t.teardown(() => net.close());
  if (before) await before(net);
  const dir = await mkdtemp(join(tmpdir(), 'sweep-nat-secret-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const secretFile = join(dir, 'turn-secret');
  await writeFile(secretFile, `${net.turn.secret}\n`, { mode: 0o600 });
  const world = await ProcessWorld.start(['alice', 'door'], [['alice', 'door']], { netns: net.ns.public, host: net.addr.public, args: serverFlags(net, secretFile) });
  t.teardown(() => world.close());
  const at = (netns: string, address: string) => ({ netns, extra: { network: { bindAddress: address } } });
  const [intercom, handset, phone] = await Promise.all([
    world.endpoint({ id: 'intercom', kind: 'intercom', account: 'door', frequencyHz: 330, ...at(net.ns.home, net.addr.home) }),
    world.endpoint({ id: 'handset', kind: 'deskphone', account: 'alice', frequencyHz: 550, ...at(net.ns.home, net.addr.home) }),
    ...(opts.nodePhone === false ? [] : [world.endpoint({ id: 'phone', kind: 'phone', account: 'alice', frequencyHz: 770, invites: 'auto', ...at(net.ns.mobile, net.addr.mobile) })]),
  ]);
  return { net, world, intercom: intercom, handset: handset, phone: phone! };
}

export const turnFlags = (net: NatNet, secretFile: string, ...more: string[]): string[] => [
  '--turn', `turn:${net.turn.udp}?transport=udp`,
  '--turn', `turn:${net.turn.tcp}?transport=tcp`,
  '--turn-secret-file', secretFile,
  ...more,
];
