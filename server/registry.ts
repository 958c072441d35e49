import type { EndpointInfo } from '../core/protocol/common.ts';
import type { AccessCatalogue } from '../core/protocol/access.ts';
import type { NoteBody, NoteType } from '../core/protocol/envelope.ts';
import type { AccountSummary } from './store.ts';

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
  /** The account's buddies, read from the store at login (A4 profile, A5 relay, presence). */
  buddies: readonly AccountSummary[];
  /** This login's id: the store's online row and a kick from another node name it (a newer login wins). */
  sessionId: string;
}

/** The accounts whose endpoints `entry` may talk to and hears about: its own and its buddies' (A4, A5). */
export function follows(entry: OnlineEndpoint, account: string): boolean {
  return entry.account === account || entry.buddies.some((b) => b.name === account);
}

/**
 * The endpoints online on this server, keyed by endpoint id (unique across accounts while
 * online), and who hears about whom: the same account and buddy accounts (A4).
 */
export class OnlineRegistry {
  private readonly byEndpoint = new Map<string, OnlineEndpoint>();
  /** The same entries by account, so a profile of 2,000 buddies does not scan every endpoint per buddy (A12). */
  private readonly byAccount = new Map<string, Map<string, OnlineEndpoint>>();
  /** Per account, the local endpoints that hear about its endpoints (its own and its buddies'). */
  private readonly followers = new Map<string, Set<OnlineEndpoint>>();

  get(endpointId: string): OnlineEndpoint | undefined {
    return this.byEndpoint.get(endpointId);
  }

  get size(): number {
    return this.byEndpoint.size;
  }

  set(entry: OnlineEndpoint): void {
    const id = entry.info.endpointId;
    const old = this.byEndpoint.get(id);
    if (old) this.remove(old);
    this.byEndpoint.set(id, entry);
    let mine = this.byAccount.get(entry.account);
    if (!mine) this.byAccount.set(entry.account, (mine = new Map<string, OnlineEndpoint>()));
    mine.set(id, entry);
    for (const account of followedAccounts(entry)) {
      let set = this.followers.get(account);
      if (!set) this.followers.set(account, (set = new Set()));
      set.add(entry);
    }
  }

  /** Removes `entry` only if it is still the one registered (a newer login may have replaced it). */
  remove(entry: OnlineEndpoint): boolean {
    const id = entry.info.endpointId;
    if (this.byEndpoint.get(id) !== entry) return false;
    this.byEndpoint.delete(id);
    const mine = this.byAccount.get(entry.account);
    mine?.delete(id);
    if (mine?.size === 0) this.byAccount.delete(entry.account);
    for (const account of followedAccounts(entry)) {
      const set = this.followers.get(account);
      set?.delete(entry);
      if (set?.size === 0) this.followers.delete(account);
    }
    return true;
  }

  endpointsOf(account: string, except?: string): EndpointInfo[] {
    const out: EndpointInfo[] = [];
    for (const e of this.byAccount.get(account)?.values() ?? []) {
      if (e.info.endpointId !== except) out.push(e.info);
    }
    return out;
  }

  /** The accounts some local endpoint follows (for a node's presence subscriptions). */
  followedAccounts(): IterableIterator<string> {
    return this.followers.keys();
  }

  /** Tells every local endpoint that follows `endpoint`'s account, except that endpoint itself, of its presence (A4). */
  deliverPresence(endpoint: EndpointInfo): void {
    for (const other of this.followers.get(endpoint.account) ?? []) {
      if (other.info.endpointId === endpoint.endpointId) continue;
      other.peer.notify('presence', { endpoint });
    }
  }

  /** Tells every related endpoint except `entry` itself that `entry` came online or went offline. */
  announce(entry: OnlineEndpoint, online: boolean): void {
    this.deliverPresence({ ...entry.info, online });
  }
}

function followedAccounts(entry: OnlineEndpoint): string[] {
  return [entry.account, ...entry.buddies.map((b) => b.name)];
}
