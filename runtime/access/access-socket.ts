import { WebSocket } from 'ws';
import { accessCatalogue, askingRetryAfter, type AccessCatalogue } from '../../core/protocol/access.ts';
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
}

/**
 * An endpoint's socket to the access server and its RPC channel: the message limit (M2), the
 * busy server's retry-after asked for (A17), and no requests taken from the server. The caller
 * wires the notes and feeds the channel from the socket.
 */
export function openAccessSocket(url: string, o: AccessSocketOptions): { ws: WebSocket; channel: RpcChannel<AccessCatalogue> } {
  const ws = new WebSocket(askingRetryAfter(url), { maxPayload: MAX_MESSAGE_BYTES, handshakeTimeout: o.timeoutMs, ...(o.headers ? { headers: o.headers } : {}) });
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
  return { ws, channel };
}
