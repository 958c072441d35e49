import type { EndpointInfo } from '../core/protocol/common.ts';
import type { AccessCatalogue } from '../core/protocol/access.ts';
import type { NoteBody, NoteType } from '../core/protocol/envelope.ts';
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
  /** The same entries by account, so a profile of 2,000 buddies does not scan every endpoint per buddy (A12). */
  private readonly byAccount = new Map<string, Map<string, OnlineEndpoint>>();

  constructor(private readonly store: AccountStore) {}

  get(endpointId: string): OnlineEndpoint | undefined {
    return this.byEndpoint.get(endpointId);
  }

  get size(): number {
    return this.byEndpoint.size;
  }

  set(entry: OnlineEndpoint): void {
    const id = entry.info.endpointId;
    const old = this.byEndpoint.get(id);
    if (old) this.byAccount.get(old.account)?.delete(id);
    this.byEndpoint.set(id, entry);
    let mine = this.byAccount.get(entry.account);
    if (!mine) this.byAccount.set(entry.account, (mine = new Map<string, OnlineEndpoint>()));
    mine.set(id, entry);
  }

  /** Removes `entry` only if it is still the one registered (a newer login may have replaced it). */
  remove(entry: OnlineEndpoint): boolean {
    const id = entry.info.endpointId;
    if (this.byEndpoint.get(id) !== entry) return false;
    this.byEndpoint.delete(id);
    const mine = this.byAccount.get(entry.account);
    mine?.delete(id);
    if (mine?.size === 0) this.byAccount.delete(entry.account);
    return true;
  }

  endpointsOf(account: string, except?: string): EndpointInfo[] {
    const out: EndpointInfo[] = [];
    for (const e of this.byAccount.get(account)?.values() ?? []) {
      if (e.info.endpointId !== except) out.push(e.info);
    }
    return out;
  }

  /** May `a` and `b` talk (signal each other, see each other's presence)? */
  related(a: string, b: string): boolean {
    return a === b || this.store.areBuddies(a, b);
  }

  /** Tells every related endpoint except `entry` itself that `entry` came online or went offline. */
  announce(entry: OnlineEndpoint, online: boolean): void {
    const endpoint = { ...entry.info, online };
    const accounts = [entry.account, ...this.store.buddiesOf(entry.account).map((b) => b.name)];
    for (const account of accounts) {
      for (const other of this.byAccount.get(account)?.values() ?? []) {
        if (other === entry || other.info.endpointId === entry.info.endpointId) continue;
        other.peer.notify('presence', { endpoint });
      }
    }
  }
}
