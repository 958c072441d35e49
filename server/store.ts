import { AccountName } from '../core/protocol/common.ts';
import { SweepError } from '../core/errors.ts';

export interface Account {
  name: string;
  displayName: string;
  passwordHash: string;
  createdAt: number;
}

/** What may be shown about an account (no hash). */
export interface AccountSummary {
  name: string;
  displayName: string;
  createdAt: number;
}

export interface StoredSession {
  account: string;
  endpointId: string;
  expiresAt: number;
}

/** What one login writes (AccountStore.writeLogin): the claim's time, the session token's hash and expiry, the online row. */
export interface LoginWrites {
  boundAt: number;
  tokenHash: string;
  expiresAt: number;
  online: OnlineRow;
  /** A14: a resume proof's nonce, recorded as used until `expiresAt`; records expired at `now` count as none. */
  resumeNonce?: { nonce: string; expiresAt: number; now: number };
}

/**
 * What a login wrote (AccountStore.writeLogin). `owner`: the endpoint id's owner, undefined when
 * nothing was written because the account does not exist or the resume nonce was used before
 * (`replayed`); the rest was written only if it is the login's account. `account`: the login's.
 */
export interface LoginWritten {
  owner: string | undefined;
  buddies: AccountSummary[];
  account: Account | undefined;
  replayed: boolean;
}

/** An endpoint online on some node (A4), under one login (`sessionId`). */
export interface OnlineRow {
  endpointId: string;
  account: string;
  kind: string;
  label: string;
  nodeId: string;
  sessionId: string;
  since: number;
}

/** A15: one household call; `record` is the reported record as JSON text. */
export interface CallRecordRow {
  doorEndpoint: string;
  sessionId: string;
  account: string;
  callerAccount: string;
  startedAt: number;
  record: string;
}

/** A16: a browser endpoint's Web Push subscription. */
export interface PushSubscriptionRow {
  endpointId: string;
  account: string;
  url: string;
  p256dh: string;
  auth: string;
  createdAt: number;
}

/**
 * The access server's state, behind one interface for every back end (SQLite, the embedded
 * default, and PostgreSQL for a cluster; server/store/). Every method is asynchronous, rejects
 * with a SweepError naming the field, and is safe to call from several server nodes at once.
 */
export interface AccountStore {
  /** Which engine holds the data ("sqlite" or "postgres"). */
  readonly dialect: 'sqlite' | 'postgres';

  createAccount(name: string, displayName: string, passwordHash: string, createdAt?: number): Promise<void>;
  setPassword(name: string, passwordHash: string): Promise<void>;
  getAccount(name: string): Promise<Account | undefined>;
  listAccounts(): Promise<AccountSummary[]>;

  /** Makes a and b buddies (both ways). Adding an existing pair is not an error. */
  addBuddies(a: string, b: string): Promise<void>;
  /** Removes the pair; false if they were not buddies. */
  removeBuddies(a: string, b: string): Promise<boolean>;
  areBuddies(a: string, b: string): Promise<boolean>;
  /** The buddies of `account`, sorted by name. */
  buddiesOf(account: string): Promise<AccountSummary[]>;

  /**
   * A10: binds `endpointId` to `account` if it is free and returns the account it is bound to
   * afterwards. One statement, so two logins racing for a new id (on any node) get one owner.
   */
  claimEndpoint(endpointId: string, account: string, now?: number): Promise<string>;
  endpointOwner(endpointId: string): Promise<string | undefined>;
  listEndpointBindings(account: string): Promise<Array<{ endpointId: string; boundAt: number }>>;
  /** A10: frees an endpoint id, revokes its session tokens and deletes its push subscription (A16); returns the account it was bound to. */
  releaseEndpoint(endpointId: string): Promise<string | undefined>;

  /** A7: how many session tokens one endpoint of `account` holds (0 or 1 in a healthy store). */
  countLoginSessions(account: string, endpointId: string): Promise<number>;
  /** A12: drops expired session tokens; returns how many. */
  purgeExpiredLoginSessions(now: number): Promise<number>;
  revokeLoginSession(tokenHash: string): Promise<void>;
  /** A7: one live token per endpoint: revokes the endpoint's others and stores this one's hash, in one transaction. */
  replaceLoginSession(tokenHash: string, account: string, endpointId: string, expiresAt: number): Promise<void>;
  addLoginSession(tokenHash: string, account: string, endpointId: string, expiresAt: number): Promise<void>;
  /** A8: removes the session with this hash and returns it if unexpired (single use). */
  takeLoginSession(tokenHash: string, now: number): Promise<StoredSession | undefined>;
  /** A9: revokes every session of one endpoint of `account`. */
  revokeLoginSessions(account: string, endpointId: string): Promise<void>;

  addProvisionCode(codeHash: string, account: string, endpointId: string, expiresAt: number, createdAt?: number): Promise<void>;
  /** The unexpired code with this hash, without using it up; expired codes are purged on the way. */
  findProvisionCode(codeHash: string, now: number): Promise<StoredSession | undefined>;
  /** Uses the code up and stores the endpoint's credential in one transaction; false if it was gone. */
  redeemProvisionCode(codeHash: string, account: string, endpointId: string, passwordHash: string, signingKey: string, now: number): Promise<boolean>;
  getEndpointCredential(account: string, endpointId: string): Promise<{ passwordHash: string; signingKey: string; createdAt: number } | undefined>;
  listEndpointCredentials(account: string): Promise<Array<{ endpointId: string; signingKey: string; createdAt: number }>>;
  /** Revokes a provisioned endpoint's credential and its sessions; false if it had none. */
  removeEndpointCredential(account: string, endpointId: string): Promise<boolean>;

  /** A4: records a login as online; a newer login of the same endpoint id replaces the older row. */
  putOnline(row: OnlineRow): Promise<void>;
  /** Removes the row only if it is still this login's (a newer login always wins); true if removed. */
  dropOnline(endpointId: string, sessionId: string): Promise<boolean>;
  /** A4: the online endpoints of `account` and of its buddies, on every node. */
  onlineForAccount(account: string): Promise<OnlineRow[]>;
  /** The online endpoints of some accounts (after a bus outage, a node re-reads those it follows). */
  onlineOf(accounts: readonly string[]): Promise<OnlineRow[]>;

  /** Node liveness: creates or refreshes this node's lease until `now + ttlMs`. */
  putLease(nodeId: string, now: number, ttlMs: number): Promise<void>;
  /** Renews this node's lease; false if it is gone (another node reaped this one: it must fence itself). */
  renewLease(nodeId: string, now: number, ttlMs: number): Promise<boolean>;
  /**
   * Other nodes whose lease is still valid at `now`; with `unbrokenSince`, only those whose lease
   * has not lapsed since then (a lease renewed after it lapsed starts again).
   */
  countFreshLeases(now: number, exceptNodeId: string, unbrokenSince?: number): Promise<number>;
  dropLease(nodeId: string): Promise<void>;
  /**
   * The reaper: removes the leases that expired before `now` and the online rows still held by
   * those nodes, in one transaction, one reaper at a time (an advisory lock on PostgreSQL).
   * Returns the rows removed, or undefined when another reaper holds the lock. A row a newer
   * login took over names the newer login's node and is never removed.
   */
  reapExpiredNodes(now: number): Promise<{ nodes: string[]; rows: OnlineRow[] } | undefined>;

  /**
   * A3, A4, A7, A10, A14: a login's writes in one round trip (one statement on PostgreSQL, one
   * transaction on SQLite): records the resume nonce, if any (a nonce used before, on any node,
   * writes nothing else); reads the account (none: nothing written); claims the endpoint id
   * (claimEndpoint); only if the login's account owns it, replaces the endpoint's session token
   * (replaceLoginSession) and puts its online row (putOnline). Returns the id's owner, the account
   * and its buddies (buddiesOf). A resume-proof login is this one round trip.
   */
  writeLogin(login: LoginWrites): Promise<LoginWritten>;

  /** A15: stores a call record once per (door endpoint, session); false when it was already there. */
  addCallRecord(row: CallRecordRow): Promise<boolean>;
  /** A15: the newest records of calls that rang `account` or that `account` rang, newest first. */
  callRecordsFor(account: string, limit: number): Promise<CallRecordRow[]>;
  /** A15: deletes `account`'s records that started before `before` (the retention); returns how many. */
  pruneCallRecords(account: string, before: number): Promise<number>;

  /** A16: stores the endpoint's push subscription, replacing its previous one. */
  putPushSubscription(row: PushSubscriptionRow): Promise<void>;
  /** A16: the push subscriptions of the endpoints of `account`. */
  pushSubscriptionsOf(account: string): Promise<PushSubscriptionRow[]>;
  /** A16: deletes the endpoint's subscription (only if it still has `url`, when given); true if one was deleted. */
  deletePushSubscription(endpointId: string, url?: string): Promise<boolean>;

  /** Runs `fn` in one transaction (many writes, one commit); `fn` must use the store it is given. */
  transaction<T>(fn: (store: AccountStore) => Promise<T>): Promise<T>;
  /** Idempotent. */
  close(): Promise<void>;
}

const MAX_DISPLAY_NAME = 64;

export function checkAccountName(name: string, field = 'account'): string {
  const r = AccountName.safeParse(name);
  if (!r.success) {
    throw new SweepError('INVALID_MESSAGE', `${field}: "${name.slice(0, 80)}" is not ${r.error.issues[0]?.message ?? 'a valid account name'}`);
  }
  return r.data;
}

export function checkDisplayName(displayName: string): string {
  if (displayName.length > MAX_DISPLAY_NAME || /[\p{Cc}]/u.test(displayName)) {
    throw new SweepError('INVALID_MESSAGE', `display name: at most ${MAX_DISPLAY_NAME} characters without control characters`);
  }
  return displayName;
}

export function unknownAccount(name: string): SweepError {
  return new SweepError('NOT_FOUND', `unknown account "${name.slice(0, 80)}"`);
}
