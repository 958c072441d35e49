// The NAT topology (test/helpers/nat-net.ts) is what the NAT traversal tests of issue 17 rely on:
// each assertion names the property a user of the topology counts on.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { makeNatNet, natNetProblem, type NatNet } from '../helpers/nat-net.ts';
import type { NsSockets, NsUdp } from '../helpers/ns-sockets.ts';
import { TurnClient, TurnError, streamStunTransport, turnRestCredentials, udpStunTransport, type Address } from '../helpers/stun.ts';

/** How long a datagram that should not arrive is waited for. */
const SILENCE_MS = 600;

function hostPort(s: string): Address {
  const i = s.lastIndexOf(':');
  return { address: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile(cmd, args, (err, stdout) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}`)) : resolve(stdout))));
}

/** What a reflector said about the sender: its address and port as the public side sees them. */
async function seenAs(sock: NsUdp, to: Address, timeoutMs = 2000): Promise<Address | undefined> {
  await sock.send('who am I', to.address, to.port);
  const r = await sock.receive(timeoutMs);
  return r && hostPort(r.data.toString());
}

const problem = natNetProblem();
if (problem !== undefined) {
  t.fail(`the NAT topology cannot be built here: ${problem}`);
} else {
  const net: NatNet = await makeNatNet();
  t.teardown(() => net.close());
  const pub = await net.sockets(net.ns.public);
  const home = await net.sockets(net.ns.home);
  const mobile = await net.sockets(net.ns.mobile);
  await pub.reflect('udp', 7001);
  await pub.reflect('udp', 7002);
  await pub.reflect('tcp', 7001);
  const reflectA = { address: net.addr.public, port: 7001 };
  const reflectB = { address: net.addr.public, port: 7002 };

  await t.test('each host behind its NAT reaches the public address, seen as its NAT outside address', async (t) => {
    const hosts: [string, NsSockets, string][] = [
      ['home', home, net.natOutside.home],
      ['mobile', mobile, net.natOutside.mobile],
    ];
    for (const [name, host, outside] of hosts) {
      const u = await host.udp();
      t.equal((await seenAs(u, reflectA))?.address, outside, `UDP from the ${name} host reaches ${net.addr.public} from ${outside}, not from its private address`);
      const s = await host.tcp(net.addr.public, 7001);
      await s.write('who am I');
      t.equal(hostPort((await s.receive(2000))?.data.toString() ?? ':').address, outside, `TCP from the ${name} host reaches ${net.addr.public} from ${outside}`);
      await s.close();
      await u.close();
    }
  });

  await t.test('a UDP socket sending to two public ports gets two outside ports behind the mobile NAT and one behind the home NAT', async (t) => {
    const m = await mobile.udp(40000);
    const m1 = await seenAs(m, reflectA);
    const m2 = await seenAs(m, reflectB);
    t.ok(m1 && m2, 'both reflectors answer the mobile host');
    t.not(m1?.port, m2?.port, 'the mobile NAT is symmetric: one source port gets a different outside port per destination, so a STUN-learnt port is useless to a peer');
    const h = await home.udp(40000);
    const h1 = await seenAs(h, reflectA);
    const h2 = await seenAs(h, reflectB);
    t.equal(h1?.port, h2?.port, 'the home NAT keeps one mapping for one source port whatever the destination (endpoint-independent mapping)');
    t.equal(h1?.port, 40000, 'the home NAT keeps the source port');
    await m.close();
    await h.close();
  });

  await t.test('a datagram to a NAT mapping from anyone but the endpoint it was made for is not delivered', async (t) => {
    const contacted = await pub.udp(7003);
    const stranger = await pub.udp(7004);
    const fromHome = await home.udp();
    for (const [name, host, outside] of [
      ['mobile', mobile, net.natOutside.mobile],
      ['home', home, net.natOutside.home],
    ] as const) {
      const inside = await host.udp();
      await inside.send('out', net.addr.public, 7003);
      const mapping = await contacted.receive(2000);
      t.equal(mapping?.address, outside, `the ${name} host's datagram leaves from ${outside}`);
      const { port } = mapping ?? { port: 0 };
      await stranger.send('unsolicited', outside, port);
      t.equal(await inside.receive(SILENCE_MS), undefined, `the ${name} NAT drops a datagram to its mapping from another public port (address-and-port-dependent filtering)`);
      if (name === 'mobile') {
        await fromHome.send('unsolicited', outside, port);
        t.equal(await inside.receive(SILENCE_MS), undefined, "the mobile NAT drops a datagram to its mapping from the home NAT's outside address (no direct path between the two hosts)");
      }
      await contacted.send('reply', outside, port);
      t.equal((await inside.receive(2000))?.data.toString(), 'reply', `the ${name} NAT delivers the reply from the endpoint its host contacted`);
      await inside.close();
    }
  });

  await t.test('turnutils_stunclient from the mobile host learns the mobile NAT outside address', async (t) => {
    const out = await new Promise<string>((resolve) => {
      const child = net.spawnIn(net.ns.mobile, 'turnutils_stunclient', [hostPort(net.turn.udp).address], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(text);
      });
    });
    const reflexive = /UDP reflexive addr: ([\d.]+):(\d+)/.exec(out);
    t.equal(reflexive?.[1], net.natOutside.mobile, `coturn answers a STUN binding request with the mobile NAT outside address (${out.trim().split('\n')[0] ?? 'no output'})`);
  });

  await t.test('a TURN allocation with REST credentials succeeds over UDP, TCP and TLS and relays to public peers; bad credentials get 401', async (t) => {
    const creds = turnRestCredentials(net.turn.secret, 'alice');
    const turnUdp = hostPort(net.turn.udp);
    const udp = new TurnClient(udpStunTransport(await mobile.udp(), turnUdp));
    const alloc = await udp.allocate(creds);
    t.equal(alloc.relayed.address, net.addr.public, 'coturn relays from the public address');
    t.equal(alloc.mapped.address, net.natOutside.mobile, 'coturn reports the mobile NAT outside address as the mapped address');

    await udp.createPermission(net.addr.public);
    await udp.sendTo(reflectA, 'via relay');
    const back = await udp.receiveData(2000);
    t.same(back && { peer: back.peer, seen: back.data.toString() }, { peer: reflectA, seen: `${alloc.relayed.address}:${alloc.relayed.port}` }, 'coturn relays to a peer in 172.31.77.0/24 and back, the peer seeing the relayed address');
    const outside = await udp.createPermission(net.addr.mobile).then(
      () => 0,
      (err: unknown) => (err instanceof TurnError ? err.code : -1),
    );
    t.equal(outside, 403, 'coturn refuses a peer outside 172.31.77.0/24 (403)');

    const refused = async (c: { username: string; password: string }) => {
      const client = new TurnClient(udpStunTransport(await home.udp(), turnUdp));
      return client.allocate(c).then(
        () => 0,
        (err: unknown) => (err instanceof TurnError ? err.code : -1),
      );
    };
    t.equal(await refused({ username: creds.username, password: `${creds.password}x` }), 401, 'a wrong password is refused with 401');
    t.equal(await refused(turnRestCredentials(net.turn.secret, 'alice', -60)), 401, 'an expired REST username is refused with 401');
    t.equal(await refused(turnRestCredentials('not the secret', 'alice')), 401, 'credentials made with another secret are refused with 401');

    const tcp = new TurnClient(streamStunTransport(await home.tcp(turnUdp.address, hostPort(net.turn.tcp).port)));
    t.equal((await tcp.allocate(creds)).mapped.address, net.natOutside.home, 'TURN over TCP allocates from the home host');
    const tlsAt = hostPort(net.turn.tls);
    const tls = new TurnClient(streamStunTransport(await home.tcp(tlsAt.address, tlsAt.port, { ca: net.turn.certPem })));
    t.equal((await tls.allocate(creds)).relayed.address, net.addr.public, 'TURN over TLS allocates, with turn.certPem trusted for the public address');
  });

  await t.test('blockMobileUdp leaves the mobile host only TCP: UDP to the public side is lost, TURN over TCP still allocates', async (t) => {
    const before = await mobile.udp();
    t.equal((await seenAs(before, reflectA))?.address, net.natOutside.mobile, 'UDP from the mobile host gets through before the block');
    await net.blockMobileUdp();
    t.equal(await seenAs(before, reflectA, SILENCE_MS), undefined, 'UDP on an established mapping is dropped after blockMobileUdp');
    t.equal(await seenAs(await mobile.udp(), reflectA, SILENCE_MS), undefined, 'UDP from a new socket is dropped after blockMobileUdp');
    const tcp = new TurnClient(streamStunTransport(await mobile.tcp(hostPort(net.turn.tcp).address, hostPort(net.turn.tcp).port)));
    const alloc = await tcp.allocate(turnRestCredentials(net.turn.secret, 'alice'));
    t.equal(alloc.mapped.address, net.natOutside.mobile, 'TURN over TCP still allocates for the mobile host');
    await tcp.createPermission(net.addr.public);
    await tcp.sendTo(reflectA, 'via relay');
    t.ok(await tcp.receiveData(2000), 'and relays UDP to a public peer on its behalf');
  });

  await t.test('close removes every namespace and process of the topology and can be called again', async (t) => {
    const names = Object.values(net.ns);
    const pids = (await Promise.all(names.map((ns) => run('ip', ['netns', 'pids', ns])))).join(' ').split(/\s+/).filter(Boolean).map(Number);
    t.ok(pids.length >= 4, `turnserver and the socket agents run in the namespaces before close (${pids.length} processes)`);
    const started = new Map(pids.map((pid) => [pid, procStat(pid)?.start]));
    await net.close();
    const left = (await run('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0]);
    t.same(
      names.filter((n) => left.includes(n)),
      [],
      'no namespace of the topology is left',
    );
    // Still running: the same process (same start time, so not a reused pid) and not a zombie
    // waiting to be reaped by a parent outside the topology.
    const living = pids.filter((pid) => {
      const now = procStat(pid);
      return now !== undefined && now.state !== 'Z' && now.start === started.get(pid);
    });
    t.same(living, [], 'no process that ran in the topology (turnserver, agents) is left');
    await net.close();
    t.pass('a second close() resolves');
  });
}

/** A process's state letter and start time from /proc (undefined once it is gone). */
function procStat(pid: number): { state: string; start: string } | undefined {
  try {
    // The command name may hold spaces; the fields after its closing parenthesis are fixed.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
    return { state: fields[0] ?? '', start: fields[19] ?? '' };
  } catch {
    return undefined;
  }
}
