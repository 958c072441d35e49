import { WebSocket } from 'ws';
import { accessCatalogue, askingNonce, askingRetryAfter, handshakeRefusal, NONCE_HEADER, type AccessCatalogue } from '../../core/protocol/access.ts';
import { RpcChannel } from '../../core/protocol/rpc.ts';
import { MAX_MESSAGE_BYTES } from '../../core/protocol/validate.ts';
import type { Clock } from '../../core/clock.ts';
import { SweepError } from '../../core/errors.ts';
import type { Logger } from '../../platform/log.ts';

export interface AccessSocketOptions {
  log: Logger;
  timeoutMs: number;
  clock?: Clock;
  /** Extra handshake headers (the bench's fleet names each home's address to a trusted proxy). */
  headers?: Record<string, string>;
  /** A14: ask for a nonce with the handshake (an endpoint that can log in by proof). */
  askNonce?: boolean;
}

export interface AccessSocket {
  ws: WebSocket;
  channel: RpcChannel<AccessCatalogue>;
  /** A14: the nonce the upgrade answer brought, once the socket is open (a server that gave none: undefined). */
  readonly handshakeNonce: string | undefined;
}

/**
 * An endpoint's socket to the access server and its RPC channel: the message limit (M2), the
 * busy server's retry-after asked for (A17), and no requests taken from the server. The caller
 * wires the notes and feeds the channel from the socket. A handshake the server refuses comes
 * as the socket's first 'error': a SweepError, RATE_LIMITED with `retryAfterMs` from a busy
 * node (A17), OFFLINE otherwise; the abort of the handshake follows as a second one (listen
 * with `on`, not `once`).
 */
export function openAccessSocket(url: string, o: AccessSocketOptions): AccessSocket {
  const ws = new WebSocket(askingRetryAfter(o.askNonce ? askingNonce(url) : url), { maxPayload: MAX_MESSAGE_BYTES, handshakeTimeout: o.timeoutMs, ...(o.headers ? { headers: o.headers } : {}) });
  const channel = new RpcChannel({
    catalogue: accessCatalogue,
    send: (text) => ws.send(text),
    log: o.log,
    ...(o.clock ? { clock: o.clock } : {}),
    timeoutMs: o.timeoutMs,
    admit: (type) => {
      throw new SweepError('UNKNOWN_TYPE', `the access server sends no requests to endpoints ("${type}")`);
    },
  });
  ws.on('unexpected-response', (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= 4096) chunks.push(chunk);
    });
    res.once('end', () => {
      ws.emit('error', handshakeRefusal(res.statusCode, Buffer.concat(chunks).toString('utf8'), url));
      ws.terminate();
    });
    res.once('error', () => {
      req.destroy();
      ws.terminate();
    });
  });
  let handshakeNonce: string | undefined;
  if (o.askNonce) {
    ws.once('upgrade', (res) => {
      const nonce = res.headers[NONCE_HEADER];
      if (typeof nonce === 'string') handshakeNonce = nonce;
    });
  }
  return {
    ws,
    channel,
    get handshakeNonce() {
      return handshakeNonce;
    },
  };
}
