import { z } from 'zod';
import {
  AccountName,
  B64u,
  DtlsFingerprint,
  EndpointId,
  EndpointInfo,
  EndpointKind,
  Id,
  SigningKey,
  WireErrorSchema,
} from './common.ts';
import type { Catalogue } from './envelope.ts';
import { IceConfig } from './ice.ts';
import { CallRecord, HistoryListBody, HistoryListResult, HistoryReportResult } from './history.ts';
import { pushRequests } from './push.ts';
import { SweepError } from '../errors.ts';

/**
 * The access protocol: JSON over a WebSocket between an endpoint and the access server.
 * See docs/protocol.md, part A.
 */

export const LoginBody = z.strictObject({
  username: AccountName,
  password: z.string().min(1).max(256),
  endpointId: EndpointId,
  kind: EndpointKind,
  label: z.string().max(64),
  signingKey: SigningKey,
  dtlsFingerprint: DtlsFingerprint,
});
export type LoginBody = z.infer<typeof LoginBody>;

/** 32 random bytes, base64url: a session token (A7); the server keeps only its SHA-256. */
export const SessionTokenText = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a session token (32 bytes, base64url)');

/** A8: log in again with a session token instead of the password; the token is bound to its endpoint id. */
export const ResumeBody = z.strictObject({
  token: SessionTokenText,
  endpointId: EndpointId,
  kind: EndpointKind,
  label: z.string().max(64),
  signingKey: SigningKey,
  dtlsFingerprint: DtlsFingerprint,
});
export type ResumeBody = z.infer<typeof ResumeBody>;

/**
 * A14: a server nonce for a resume proof: a token the server signed (any node of a cluster can
 * check it), valid for a short time and for one proof on any node.
 */
export const ChallengeResult = z.strictObject({ nonce: z.string().min(1).max(512), expiresAt: z.number().int() });
export type ChallengeResult = z.infer<typeof ChallengeResult>;

/**
 * A14: log in again with the endpoint certificate of an earlier login and the nonce signed with
 * the endpoint's signing key (no password, no Argon2). The certificate gives account, endpoint id
 * and keys; `label` may change.
 */
export const ResumeProofBody = z.strictObject({
  certificate: z.string().min(1).max(4096),
  nonce: z.string().min(1).max(512),
  /** Ed25519 signature (base64url) over resumeProofMessage(nonce). */
  proof: z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'an Ed25519 signature (64 bytes, base64url)'),
  label: z.string().max(64),
});
export type ResumeProofBody = z.infer<typeof ResumeProofBody>;

/** A14: what the endpoint signs: bound to this protocol and version, so no other signature of its key counts. */
export function resumeProofMessage(nonce: string): string {
  return `sweep-resume-proof/v1:${nonce}`;
}

export const Buddy = z.strictObject({
  account: AccountName,
  displayName: z.string().max(64),
  endpoints: z.array(EndpointInfo).max(64),
});
export type Buddy = z.infer<typeof Buddy>;

export const Profile = z.strictObject({
  account: AccountName,
  displayName: z.string().max(64),
  endpointId: EndpointId,
  /** Other endpoints logged in with the same credentials (A4). */
  siblings: z.array(EndpointInfo).max(64),
  buddies: z.array(Buddy).max(256),
});
export type Profile = z.infer<typeof Profile>;

/**
 * A7: a short-lived login session, so a client that must not keep the password (the browser)
 * can log in again with `resume`. Single use: every resume or refresh replaces it.
 */
export const SessionToken = z.strictObject({
  token: SessionTokenText,
  expiresAt: z.number().int(),
});
export type SessionToken = z.infer<typeof SessionToken>;

export const LoginResult = z.strictObject({
  profile: Profile,
  /** Endpoint certificate (A3): "<payload b64url>.<signature b64url>". */
  certificate: z.string().max(4096),
  serverTime: z.number().int(),
  /** A7: the session this login opened (servers before A7 send none). */
  session: SessionToken.optional(),
  /**
   * A12: true when the profile's siblings and buddies did not fit in this answer: they are empty
   * here and follow in `profilePage` notes, the last one marked `last`. Absent: the profile is whole.
   */
  profileFollows: z.literal(true).optional(),
  /** A13: STUN and TURN servers for links, with expiring TURN credentials; absent when none are configured. */
  ice: IceConfig.optional(),
});
export type LoginResult = z.infer<typeof LoginResult>;

/** A12: part of a buddy: its header and some of its online endpoints (a buddy may span pages). */
export const BuddyPart = z.strictObject({
  account: AccountName,
  displayName: z.string().max(64),
  endpoints: z.array(EndpointInfo).max(1024),
});

/**
 * A12: one page of a login's profile, sent after the login answer. Pages are numbered from 1;
 * each stays within the message limit (M2); the last one says `last: true`.
 */
export const ProfilePage = z.strictObject({
  page: z.number().int().min(1).max(100_000),
  last: z.boolean(),
  siblings: z.array(EndpointInfo).max(1024),
  buddies: z.array(BuddyPart).max(1024),
});
export type ProfilePage = z.infer<typeof ProfilePage>;

/**
 * A12: puts a paged profile back together on the client. The login answer's profile (with empty
 * siblings and buddies) is filled in place, page by page, in order; a buddy split over two pages
 * is joined. `add` returns true once the last page is in and throws INVALID_MESSAGE on a page out
 * of order. Presence notes that arrive meanwhile need no merging: every page is built after them.
 */
export class ProfileAssembler {
  private expected = 1;
  private finished = false;

  constructor(readonly profile: Profile) {}

  get done(): boolean {
    return this.finished;
  }

  add(page: ProfilePage): boolean {
    if (this.finished || page.page !== this.expected) {
      throw new SweepError('INVALID_MESSAGE', `profilePage.page: ${page.page}, expected ${this.finished ? 'none after the last page' : this.expected}`);
    }
    this.expected += 1;
    this.profile.siblings.push(...page.siblings);
    const buddies = this.profile.buddies;
    for (const part of page.buddies) {
      const tail = buddies[buddies.length - 1];
      if (tail?.account === part.account) tail.endpoints.push(...part.endpoints);
      else buddies.push({ account: part.account, displayName: part.displayName, endpoints: [...part.endpoints] });
    }
    this.finished = page.last;
    return page.last;
  }
}

/** Link set-up payloads carried by the rendezvous relay (A5). `linkId` names one set-up attempt. */
export const SignalPayload = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('offer'), linkId: Id, sdp: z.string().max(12_000) }),
  z.strictObject({ kind: z.literal('answer'), linkId: Id, sdp: z.string().max(12_000) }),
  z.strictObject({ kind: z.literal('candidate'), linkId: Id, candidate: z.string().max(1024), mid: z.string().max(64) }),
  /** "Please offer me a link": the endpoint with the smaller id always offers (L1). */
  z.strictObject({ kind: z.literal('connect'), linkId: Id }),
]);
export type SignalPayload = z.infer<typeof SignalPayload>;

export const SignalOut = z.strictObject({ to: EndpointId, payload: SignalPayload });
export const SignalIn = z.strictObject({ from: EndpointId, fromAccount: AccountName, payload: SignalPayload });
export type SignalIn = z.infer<typeof SignalIn>;

export const Empty = z.strictObject({});

/**
 * A10: the one list of `login`/`resume` refusals that retrying cannot fix. Only wrong
 * credentials (UNAUTHORIZED: a wrong password, or a certificate that does not verify with the
 * configured server key) end an endpoint's reconnecting. Every other refusal — RATE_LIMITED
 * (including "server busy"), BUSY, OFFLINE, TIMEOUT, CLOSED (server restarting), FORBIDDEN
 * (an endpoint id an operator has yet to release), INTERNAL — is retried with back-off.
 */
export const FINAL_LOGIN_REFUSALS: ReadonlySet<string> = new Set(['UNAUTHORIZED']);

export function isFinalLoginRefusal(code: string): boolean {
  return FINAL_LOGIN_REFUSALS.has(code);
}

/**
 * A10: an endpoint's reconnect back-off (full jitter). Its ceiling only bounds how long a device
 * takes to notice that its server is back: a server that answers paces its clients itself (A17).
 * With a 30 s ceiling, a fleet whose server restarted in 6 s came back over 35 s.
 */
export const RECONNECT_BACKOFF = { initialMs: 500, maxMs: 10_000 } as const;

/** A17: the query parameter by which a client asks for `retryAfterMs` on the server's refusals. */
export const RETRY_AFTER_PARAM = 'retryAfter';

/** A17: the access URL with the ask for `retryAfterMs` (an older server ignores it). */
export function askingRetryAfter(url: string): string {
  return asking(url, RETRY_AFTER_PARAM);
}

/** A14: the query parameter by which a client asks for a nonce with the handshake, and the upgrade answer's header that carries it. */
export const NONCE_PARAM = 'nonce';
export const NONCE_HEADER = 'sweep-nonce';

/** A14: the access URL with the ask for a nonce in the upgrade answer, saving a proof login the `challenge` round trip (an older server ignores it). */
export function askingNonce(url: string): string {
  return asking(url, NONCE_PARAM);
}

function asking(url: string, param: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}${param}=1`;
}

/**
 * A17: a node whose logins are full refuses the WebSocket handshake itself: HTTP 503, `Retry-After`
 * in seconds, and this body (the wait in ms). Anything else that refuses the handshake is a node
 * out of reach.
 */
export const BusyHandshakeBody = z.object({ error: WireErrorSchema });

/** The error a refused handshake stands for: the node's RATE_LIMITED with its wait, or OFFLINE. */
export function handshakeRefusal(status: number | undefined, body: string, url: string): SweepError {
  if (status === 503) {
    try {
      const { error } = BusyHandshakeBody.parse(JSON.parse(body));
      return new SweepError(error.code === 'RATE_LIMITED' ? 'RATE_LIMITED' : 'OFFLINE', error.message, { retryAfterMs: error.retryAfterMs });
    } catch {
      // Not a Sweep node's answer (a load balancer without a node behind it, say).
    }
  }
  return new SweepError('OFFLINE', `cannot reach the access server at ${url} (HTTP ${status ?? 'no status'})`);
}

export const accessCatalogue = {
  requests: {
    login: { body: LoginBody, result: LoginResult },
    signal: { body: SignalOut, result: Empty },
    /** A8: login with a session token (same result as login, with a new token). */
    resume: { body: ResumeBody, result: LoginResult },
    /** A9: a new session token for this login; the old one stops working. */
    refresh: { body: Empty, result: SessionToken },
    /** A14: a nonce for a resume proof. */
    challenge: { body: Empty, result: ChallengeResult },
    /** A14: login with the certificate and a signed nonce (same result as login). */
    resumeProof: { body: ResumeProofBody, result: LoginResult },
    /** A9: ends the login and revokes its session token. */
    logout: { body: Empty, result: Empty },
    /** A15: the endpoint that rang a household reports the call's record. */
    'history.report': { body: z.strictObject({ record: CallRecord }), result: HistoryReportResult },
    /** A15: the newest records this endpoint's account may read. */
    'history.list': { body: HistoryListBody, result: HistoryListResult },
    /** A16: Web Push subscriptions and ring notices. */
    ...pushRequests,
  },
  notes: {
    /** An endpoint of a buddy or of the same account came online or went offline (A4). */
    presence: z.strictObject({ endpoint: EndpointInfo }),
    signal: SignalIn,
    /** The server ends this login (replaced by a newer login of the same endpoint id, account removed). */
    kicked: z.strictObject({ reason: z.string().max(256) }),
    /** The server refused a message it could not answer (bad JSON or envelope, binary frame): no request id to reply to. */
    error: WireErrorSchema,
    /** A12: part of the profile of the login just answered with `profileFollows`. */
    profilePage: ProfilePage,
    /** A13: fresh TURN credentials, sent before the ones in use expire. */
    ice: IceConfig,
  },
} satisfies Catalogue;
export type AccessCatalogue = typeof accessCatalogue;

export { B64u };
