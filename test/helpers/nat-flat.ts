// The NAT tests' building (issue 17): the access server and coturn on the public side, the flat's
// intercom and handset behind the home router, the phone on mobile data behind a symmetric NAT.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeNatNet, type NatNet } from './nat-net.ts';
import { ProcessWorld } from '../../lab/process-world.ts';
import type { ChildEndpoint } from '../../lab/child-endpoint.ts';
import type { EndpointConfigInput } from '../../firmware-config/endpoint-config.ts';

/** Who undoes what `flat` made: a tap Test, or a benchmark's own list (bench/nat.ts). */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

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

/**
 * The access server and coturn on the public side, intercom and handset at home, the phone on mobile data.
 * `opts.extra`: more config for one endpoint (e.g. `links`), merged at the top level.
 */
export async function flat(
  t: Teardown,
  serverFlags: (net: NatNet, secretFile: string) => string[],
  before?: (net: NatNet) => Promise<void>,
  opts: { nodePhone?: boolean; extra?: Partial<Record<'intercom' | 'handset' | 'phone', Partial<EndpointConfigInput>>> } = {},
): Promise<Flat> {
  const net = await makeNatNet();
  t.teardown(() => net.close());
  if (before) await before(net);
  const dir = await mkdtemp(join(tmpdir(), 'sweep-nat-secret-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const secretFile = join(dir, 'turn-secret');
  await writeFile(secretFile, `${net.turn.secret}\n`, { mode: 0o600 });
  const world = await ProcessWorld.start(['alice', 'door'], [['alice', 'door']], { netns: net.ns.public, host: net.addr.public, args: serverFlags(net, secretFile) });
  t.teardown(() => world.close());
  const at = (id: 'intercom' | 'handset' | 'phone', netns: string, address: string) => ({ id, netns, extra: { ...opts.extra?.[id], network: { bindAddress: address } } });
  const [intercom, handset, phone] = await Promise.all([
    world.endpoint({ kind: 'intercom', account: 'door', frequencyHz: 330, ...at('intercom', net.ns.home, net.addr.home) }),
    world.endpoint({ kind: 'deskphone', account: 'alice', frequencyHz: 550, ...at('handset', net.ns.home, net.addr.home) }),
    ...(opts.nodePhone === false ? [] : [world.endpoint({ kind: 'phone', account: 'alice', frequencyHz: 770, invites: 'auto', ...at('phone', net.ns.mobile, net.addr.mobile) })]),
  ]);
  return { net, world, intercom: intercom, handset: handset, phone: phone! };
}

export const turnFlags = (net: NatNet, secretFile: string, ...more: string[]): string[] => [
  '--turn', `turn:${net.turn.udp}?transport=udp`,
  '--turn', `turn:${net.turn.tcp}?transport=tcp`,
  '--turn-secret-file', secretFile,
  ...more,
];
