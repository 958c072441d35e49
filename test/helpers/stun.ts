/**
 * A minimal STUN/TURN client (RFC 8489 / RFC 8656, IPv4 only) for tests: enough to allocate a
 * relay with long-term credentials, permit a peer, send to it and read what comes back. It runs
 * over NsSockets, so the requests leave from inside a test namespace. No retransmissions: the
 * test networks do not lose packets, so a missing answer is a finding.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { NsStream, NsUdp } from './ns-sockets.ts';

const MAGIC = 0x2112a442;

/** Message types (method | class) this client uses. */
export const STUN_TYPE = {
  allocateRequest: 0x0003,
  allocateSuccess: 0x0103,
  createPermissionRequest: 0x0008,
  sendIndication: 0x0016,
  dataIndication: 0x0017,
} as const;

export const STUN_ATTR = {
  username: 0x0006,
  messageIntegrity: 0x0008,
  errorCode: 0x0009,
  xorPeerAddress: 0x0012,
  data: 0x0013,
  realm: 0x0014,
  nonce: 0x0015,
  xorRelayedAddress: 0x0016,
  requestedTransport: 0x0019,
  xorMappedAddress: 0x0020,
} as const;

export interface Address {
  address: string;
  port: number;
}

export interface StunMessage {
  type: number;
  txid: Buffer;
  /** The first value of each attribute type. */
  attrs: Map<number, Buffer>;
}

function attribute(type: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + value.length + ((4 - (value.length % 4)) % 4));
  b.writeUInt16BE(type, 0);
  b.writeUInt16BE(value.length, 2);
  value.copy(b, 4);
  return b;
}

/** Encodes a message; with integrityKey it ends with MESSAGE-INTEGRITY (HMAC-SHA1 over everything before it). */
export function encodeStun(type: number, txid: Buffer, attrs: [number, Buffer][], integrityKey?: Buffer): Buffer {
  const body = Buffer.concat(attrs.map(([t, v]) => attribute(t, v)));
  const header = (length: number) => {
    const h = Buffer.alloc(20);
    h.writeUInt16BE(type, 0);
    h.writeUInt16BE(length, 2);
    h.writeUInt32BE(MAGIC, 4);
    txid.copy(h, 8);
    return h;
  };
  if (!integrityKey) return Buffer.concat([header(body.length), body]);
  const head = header(body.length + 24);
  const mac = createHmac('sha1', integrityKey).update(Buffer.concat([head, body])).digest();
  return Buffer.concat([head, body, attribute(STUN_ATTR.messageIntegrity, mac)]);
}

/** The whole length of the STUN message that starts buf, once its header is there (for framing over TCP). */
export function stunLength(buf: Buffer): number | undefined {
  return buf.length < 20 ? undefined : 20 + buf.readUInt16BE(2);
}

export function decodeStun(buf: Buffer): StunMessage {
  if (buf.length < 20 || buf.readUInt32BE(4) !== MAGIC || stunLength(buf) !== buf.length) throw new Error(`not a STUN message: ${buf.subarray(0, 32).toString('hex')}`);
  const attrs = new Map<number, Buffer>();
  for (let at = 20; at + 4 <= buf.length; ) {
    const type = buf.readUInt16BE(at);
    const length = buf.readUInt16BE(at + 2);
    if (!attrs.has(type)) attrs.set(type, buf.subarray(at + 4, at + 4 + length));
    at += 4 + length + ((4 - (length % 4)) % 4);
  }
  return { type: buf.readUInt16BE(0), txid: buf.subarray(8, 20), attrs };
}

export function decodeXorAddress(v: Buffer): Address {
  if (v.length < 8 || v[1] !== 1) throw new Error(`not an IPv4 XOR address: ${v.toString('hex')}`);
  const a = v.readUInt32BE(4) ^ MAGIC;
  return { address: [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.'), port: v.readUInt16BE(2) ^ (MAGIC >>> 16) };
}

export function encodeXorAddress({ address, port }: Address): Buffer {
  const v = Buffer.alloc(8);
  v[1] = 1;
  v.writeUInt16BE(port ^ (MAGIC >>> 16), 2);
  const a = address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
  v.writeUInt32BE((a ^ MAGIC) >>> 0, 4);
  return v;
}

/**
 * TURN REST API credentials as coturn's `use-auth-secret` checks them: username
 * `<unix expiry>:<name>`, password base64(HMAC-SHA1(secret, username)).
 */
export function turnRestCredentials(secret: string, name: string, ttlSeconds = 3600, nowMs = Date.now()): { username: string; password: string } {
  const username = `${Math.floor(nowMs / 1000) + ttlSeconds}:${name}`;
  return { username, password: createHmac('sha1', secret).update(username).digest('base64') };
}

/** How STUN messages travel: whole messages out, whole messages in (undefined on timeout or end). */
export interface StunTransport {
  send(msg: Buffer): Promise<void>;
  receive(timeoutMs: number): Promise<Buffer | undefined>;
}

/** STUN over a namespace UDP socket to server (datagrams from anyone else are ignored). */
export function udpStunTransport(sock: NsUdp, server: Address): StunTransport {
  return {
    send: (msg) => sock.send(msg, server.address, server.port),
    receive: async (timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const r = await sock.receive(Math.max(0, deadline - Date.now()));
        if (!r || (r.address === server.address && r.port === server.port)) return r?.data;
      }
    },
  };
}

/** STUN over a namespace TCP or TLS connection, framed by the messages' own length. */
export function streamStunTransport(stream: NsStream): StunTransport {
  let buf = Buffer.alloc(0);
  return {
    send: (msg) => stream.write(msg),
    receive: async (timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const length = stunLength(buf);
        if (length !== undefined && buf.length >= length) {
          const msg = buf.subarray(0, length);
          buf = buf.subarray(length);
          return msg;
        }
        const r = await stream.receive(Math.max(0, deadline - Date.now()));
        if (!r) return undefined;
        buf = Buffer.concat([buf, r.data]);
      }
    },
  };
}

/** A TURN error response, with its code (401 Unauthorized, 403 Forbidden, …) and reason. */
export class TurnError extends Error {
  constructor(
    readonly code: number,
    reason: string,
  ) {
    super(`TURN error ${code} ${reason}`);
    this.name = 'TurnError';
  }
}

/** One TURN allocation's client side (one per transport). */
export class TurnClient {
  #auth: { username: Buffer; realm: Buffer; nonce: Buffer; key: Buffer } | undefined;
  #data: StunMessage[] = [];

  constructor(
    private readonly transport: StunTransport,
    private readonly timeoutMs = 3000,
  ) {}

  async #transaction(type: number, attrs: [number, Buffer][]): Promise<StunMessage> {
    const txid = randomBytes(12);
    const auth = this.#auth;
    const all: [number, Buffer][] = auth ? [...attrs, [STUN_ATTR.username, auth.username], [STUN_ATTR.realm, auth.realm], [STUN_ATTR.nonce, auth.nonce]] : attrs;
    await this.transport.send(encodeStun(type, txid, all, auth?.key));
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const raw = await this.transport.receive(Math.max(0, deadline - Date.now()));
      if (!raw) throw new Error(`no answer to STUN type 0x${type.toString(16)} within ${this.timeoutMs} ms`);
      const msg = decodeStun(raw);
      if (msg.type === STUN_TYPE.dataIndication) this.#data.push(msg);
      else if (msg.txid.equals(txid)) return msg;
    }
  }

  static #error(msg: StunMessage): TurnError | undefined {
    if ((msg.type & 0x0110) !== 0x0110) return undefined;
    const v = msg.attrs.get(STUN_ATTR.errorCode);
    return v ? new TurnError((v[2]! & 7) * 100 + v[3]!, v.subarray(4).toString()) : new TurnError(0, 'without ERROR-CODE');
  }

  /**
   * Allocates a UDP relay with long-term credentials (the 401 challenge first, then the signed
   * request). Rejects with TurnError when the server refuses.
   */
  async allocate(creds: { username: string; password: string }): Promise<{ relayed: Address; mapped: Address }> {
    const transport: [number, Buffer][] = [[STUN_ATTR.requestedTransport, Buffer.from([17, 0, 0, 0])]];
    this.#auth = undefined;
    const challenge = await this.#transaction(STUN_TYPE.allocateRequest, transport);
    const realm = challenge.attrs.get(STUN_ATTR.realm);
    const nonce = challenge.attrs.get(STUN_ATTR.nonce);
    const refused = TurnClient.#error(challenge);
    if (refused?.code !== 401 || !realm || !nonce) throw refused ?? new Error('the server allocated without asking for credentials');
    const key = createHash('md5').update(`${creds.username}:${realm.toString()}:${creds.password}`).digest();
    this.#auth = { username: Buffer.from(creds.username), realm, nonce, key };
    const res = await this.#transaction(STUN_TYPE.allocateRequest, transport);
    const error = TurnClient.#error(res);
    if (error) throw error;
    const relayed = res.attrs.get(STUN_ATTR.xorRelayedAddress);
    const mapped = res.attrs.get(STUN_ATTR.xorMappedAddress);
    if (res.type !== STUN_TYPE.allocateSuccess || !relayed || !mapped) throw new Error(`unexpected allocate answer 0x${res.type.toString(16)}`);
    return { relayed: decodeXorAddress(relayed), mapped: decodeXorAddress(mapped) };
  }

  /** Lets peerAddress (any port) send through the relay. Rejects with TurnError (403 for a forbidden peer). */
  async createPermission(peerAddress: string): Promise<void> {
    const res = await this.#transaction(STUN_TYPE.createPermissionRequest, [[STUN_ATTR.xorPeerAddress, encodeXorAddress({ address: peerAddress, port: 0 })]]);
    const error = TurnClient.#error(res);
    if (error) throw error;
  }

  /** Sends data from the relayed address to peer (a Send indication). */
  async sendTo(peer: Address, data: Buffer | string): Promise<void> {
    const msg = encodeStun(STUN_TYPE.sendIndication, randomBytes(12), [
      [STUN_ATTR.xorPeerAddress, encodeXorAddress(peer)],
      [STUN_ATTR.data, Buffer.from(data)],
    ]);
    await this.transport.send(msg);
  }

  /** The next data a peer sent to the relayed address, or undefined when none arrives within timeoutMs. */
  async receiveData(timeoutMs: number): Promise<{ peer: Address; data: Buffer } | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const msg = this.#data.shift() ?? (await this.transport.receive(Math.max(0, deadline - Date.now())).then((raw) => (raw ? decodeStun(raw) : undefined)));
      if (!msg) return undefined;
      const peer = msg.attrs.get(STUN_ATTR.xorPeerAddress);
      const data = msg.attrs.get(STUN_ATTR.data);
      if (msg.type === STUN_TYPE.dataIndication && peer && data) return { peer: decodeXorAddress(peer), data: Buffer.from(data) };
    }
  }
}
