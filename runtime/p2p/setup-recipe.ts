/**
 * How the link dodges libdatachannel's ~1 s DTLS stall (FINDINGS: the answerer's ClientHello
 * can arrive before the offerer applied the answer, is dropped, and OpenSSL retransmits after 1 s).
 * - 'quiet-offerer': the offerer never sends its candidates; the answerer learns it as
 *   peer-reflexive from its checks, which only start once the answer is applied.
 * - 'active-offerer': the offer says `a=setup:active` (the offerer becomes the DTLS client) and
 *   the offerer's candidates are held until the answer is applied.
 * - 'active-quiet': both: the offerer is the DTLS client and sends no candidates.
 * - 'held-offerer': no munging (the answerer stays the DTLS client); the offerer's candidates are
 *   held until the answer is applied, so no ICE check can succeed before the offerer can talk DTLS.
 * - 'connect-first': as 'held-offerer', but the offerer's candidates are held until its own ICE is
 *   connected (its DTLS server is then listening), or at the latest CANDIDATE_FALLBACK_MS after
 *   the answer, for a peer that sends no candidates of its own.
 * The default is chosen by measurement; see DEFAULT_RECIPE.
 */
export type SetupRecipe = 'quiet-offerer' | 'active-offerer' | 'active-quiet' | 'held-offerer' | 'connect-first';

/**
 * Measured with bench/link-setup.ts (creation → `ctl` open on both ends, 100 set-ups in one process
 * on 127.0.0.1, 2 cores; stall = over 200 ms):
 *   quiet-offerer   p50 55 ms, p95 59 ms, max 67 ms, 0 stalls in 30 (the answerer's check to the
 *                   peer-reflexive offerer waits one 50 ms libjuice pacing tick)
 *   active-offerer  p50 4.4 ms, 5 stalls in 30 (~1000 ms each)
 *   active-quiet    p50 55 ms, 7 stalls in 30
 *   held-offerer    p50 3.9 ms, p95 55 ms, 1 stall in 60
 *   connect-first   p50 3.4-3.7 ms, p95 54-56 ms, max 65-80 ms, 0 stalls in 3 × 100
 * connect-first wins: the stall needs the answerer's ClientHello to reach the offerer before the
 * offerer's DTLS transport exists, which libdatachannel creates when the offerer's ICE connects;
 * holding the offerer's candidates until then means the answerer cannot connect (and send its
 * ClientHello) before that point.
 */
export const DEFAULT_RECIPE: SetupRecipe = 'connect-first';

/** What a recipe changes in the set-up: the adapter (peer-transport.ts) asks these, nothing else. */
export interface RecipeRules {
  /** The offer as sent (the active recipes make the offerer the DTLS client). */
  offer(sdp: string): string;
  /** Whether the offerer sends its candidates at all (the quiet ones are found as peer-reflexive). */
  offererSendsCandidates: boolean;
  /**
   * Held offerer candidates go once the offerer's ICE is connected or, at the latest, this long
   * after the answer was applied (0: at once when the answer is applied).
   */
  releaseCandidatesAfterAnswerMs: number;
}

/** 'connect-first': when the offerer's ICE has not connected by then, its candidates go anyway. */
const CANDIDATE_FALLBACK_MS = 100;

const asIs = (sdp: string): string => sdp;
const active = (sdp: string): string => sdp.replace(/^a=setup:actpass/gm, 'a=setup:active');

export function recipeRules(recipe: SetupRecipe): RecipeRules {
  switch (recipe) {
    case 'quiet-offerer':
      return { offer: asIs, offererSendsCandidates: false, releaseCandidatesAfterAnswerMs: 0 };
    case 'active-offerer':
      return { offer: active, offererSendsCandidates: true, releaseCandidatesAfterAnswerMs: 0 };
    case 'active-quiet':
      return { offer: active, offererSendsCandidates: false, releaseCandidatesAfterAnswerMs: 0 };
    case 'held-offerer':
      return { offer: asIs, offererSendsCandidates: true, releaseCandidatesAfterAnswerMs: 0 };
    case 'connect-first':
      return { offer: asIs, offererSendsCandidates: true, releaseCandidatesAfterAnswerMs: CANDIDATE_FALLBACK_MS };
  }
}

