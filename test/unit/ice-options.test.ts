import t from 'tap';
import { createHmac } from 'node:crypto';
import { checkIceOptions, iceConfigFor, iceRenewalDelayMs } from '../../server/ice.ts';
import { parseIceUrl } from '../../core/protocol/ice.ts';
import { iceRtcConfig } from '../../runtime/p2p/ice-servers.ts';

const SECRET = 'a-shared-secret-of-some-length';

void t.test('A13 options: bad URLs, a TURN server without a secret, a short secret, a TTL out of range and relay-only without TURN are refused, naming the option', async (t) => {
  t.throws(() => checkIceOptions({ stun: ['http://x'], turn: [] }), /--stun: "http:\/\/x" is not a STUN or TURN URL; allowed: stun:HOST/);
  t.throws(() => checkIceOptions({ stun: ['turn:x'], turn: [] }), /--stun: "turn:x" is a TURN URL; give it with --turn/);
  t.throws(() => checkIceOptions({ stun: [], turn: ['stun:x'] , secret: SECRET }), /--turn: "stun:x" is a STUN URL/);
  t.throws(() => checkIceOptions({ stun: [], turn: ['turn:x'] }), /--turn needs --turn-secret-file/);
  t.throws(() => checkIceOptions({ stun: [], turn: ['turn:x'], secret: 'short' }), /fewer than 16 characters/);
  t.throws(() => checkIceOptions({ stun: [], turn: ['turn:x'], secret: SECRET, ttlSeconds: 30 }), /--turn-ttl: 30 is not a whole number of seconds from 120 to 86400/);
  t.throws(() => checkIceOptions({ stun: ['stun:x'], turn: [], policy: 'relay' }), /--relay-only needs at least one --turn server/);
  t.throws(() => parseIceUrl('turns:x?transport=udp'), /turns: runs over TLS, so over TCP only/);
  t.doesNotThrow(() => checkIceOptions({ stun: ['stun:stun.example.org'], turn: ['turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:443'], secret: SECRET, policy: 'relay' }));
});

void t.test('A13 credentials: username "<expiry>:<account>", password the HMAC-SHA1 coturn checks, renewed a quarter of the lifetime before expiry', async (t) => {
  const now = 1_700_000_000_000;
  const ice = iceConfigFor({ stun: [], turn: ['turn:t.example:3478'], secret: SECRET, ttlSeconds: 600 }, 'alice', now);
  const s = ice.servers[0]!;
  t.equal(s.username, `${1_700_000_000 + 600}:alice`);
  t.equal(s.credential, createHmac('sha1', SECRET).update(s.username!).digest('base64'));
  t.equal(ice.expiresAt, (1_700_000_000 + 600) * 1000);
  t.notOk(JSON.stringify(ice).includes(SECRET), 'the secret itself is never handed out');
  t.equal(iceRenewalDelayMs({ stun: [], turn: [], ttlSeconds: 120 }), 60_000, 'at least a minute before expiry');
  t.equal(iceRenewalDelayMs({ stun: [], turn: [], ttlSeconds: 3600 }), 2_700_000, 'a quarter of the lifetime before expiry');
});

void t.test('A13 on node-datachannel: TURN servers become server objects (the REST username holds a colon), with the relay type of each URL', async (t) => {
  const ice = iceConfigFor({ stun: ['stun:s.example:19302'], turn: ['turn:t.example?transport=tcp', 'turns:t.example:443', 'turn:[2001:db8::1]:3478'], secret: SECRET, policy: 'relay' }, 'bob', 0);
  const cfg = iceRtcConfig(ice);
  t.equal(cfg.iceTransportPolicy, 'relay');
  t.same(cfg.iceServers.map((s) => (typeof s === 'string' ? s : [s.hostname, s.port, s.relayType ?? 'stun'])), [
    ['s.example', 19302, 'stun'],
    ['t.example', 3478, 'TurnTcp'],
    ['t.example', 443, 'TurnTls'],
    ['2001:db8::1', 3478, 'TurnUdp'],
  ]);
  t.same(iceRtcConfig(undefined), { iceServers: [] }, 'no servers: the local network only');
});
