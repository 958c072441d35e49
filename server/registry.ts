import type { EndpointInfo } from '../runtime/protocol/common.ts';
import type { AccessCatalogue } from '../runtime/protocol/access.ts';
import type { NoteBody, NoteType } from '../runtime/protocol/envelope.ts';
import type { AccountStore } from './store.ts';

/** What the registry needs from a connection. */
export interface OnlinePeer {
  notify<T extends NoteType<AccessCatalogue>>(type: T, body: NoteBody<AccessCatalogue, T>): void;
  /** Ends this login because a newer one took its endpoint id. */
  kick(reason: string): void;
}

export interface OnlineEndpoint {
  account: string;
  info: EndpointInfo;
  peer: OnlinePeer;
}

/**
 * The endpoints online on this server, keyed by endpoint id (unique across accounts while
 * online), and who hears about whom: the same account and buddy accounts (A4).
 */
export class OnlineRegistry {
  private readonly byEndpoint = new Map<string, OnlineEndpoint>();

  constructor(private readonly store: AccountStore) {}

  get(endpointId: string): OnlineEndpoint | undefined {
    return this.byEndpoint.get(endpointId);
  }

  get size(): number {
    return this.byEndpoint.size;
  }

  set(entry: OnlineEndpoint): void {
    this.byEndpoint.set(entry.info.endpointId, entry);
  }

  /** Removes `entry` only if it is still the one registered (a newer login may have replaced it). */
  remove(entry: OnlineEndpoint): boolean {
    if (this.byEndpoint.get(entry.info.endpointId) !== entry) return false;
    this.byEndpoint.delete(entry.info.endpointId);
    return true;
  }

  endpointsOf(account: string, except?: string): EndpointInfo[] {
    const out: EndpointInfo[] = [];
    for (const e of this.byEndpoint.values()) {
      if (e.account === account && e.info.endpointId !== except) out.push(e.info);
    }
    return out;
  }

  /** May `a` and `b` talk (signal each other, see each other's presence)? */
  related(a: string, b: string): boolean {
    return a === b || this.store.areBuddies(a, b);
  }

  /** Tells every related endpoint except `entry` itself that `entry` came online or went offline. */
  announce(entry: OnlineEndpoint, online: boolean): void {
    const buddies = new Set(this.store.buddiesOf(entry.account).map((b) => b.name));
    const endpoint = { ...entry.info, online };
    for (const other of this.byEndpoint.values()) {
      if (other === entry || other.info.endpointId === entry.info.endpointId) continue;
      if (other.account === entry.account || buddies.has(other.account)) other.peer.notify('presence', { endpoint });
    }
  }
}
