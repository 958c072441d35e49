/**
 * Runs inside `unshare -n` (see harness.ts runIsolated): the world (access server, intercom,
 * handset) and headless Chromium on loopback only. `cases` runs the four browser scenarios in
 * order and prints one JSON line with what was observed; `bench N` prints pull latencies.
 * The tap test (phone.test.ts) and bench/browser-sweep.ts assert on and summarise that line.
 */
import { mkdir } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { Page } from 'playwright-core';
import { intercomCallsHandset, waitForEvent, waitUntil } from '../../lab/story.ts';
import { webPushStep } from './web-push-step.ts';
import { denyMicrophone, linked, loggedIn, noCallLeft, pageHearing, pageState, sleep, startBrowserWorld, waitPage, type BrowserWorld } from './harness.ts';

const ARTIFACTS = 'test-artifacts';

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
}

/** Median dominant frequency the page's analyser reports over `ms`. */
async function pageHears(page: Page, ms = 600): Promise<number | null> {
  const seen: number[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const h = await pageHearing(page);
    if (h.hz !== null) seen.push(h.hz);
    await sleep(50);
  }
  seen.sort((a, b) => a - b);
  return seen.length ? seen[Math.floor(seen.length / 2)]! : null;
}

type Result = Record<string, unknown>;

/** A step that failed may leave the door ringing or in a call: the next ones start from none. */
/**
 * Chromium's fake microphone beeps: a 400 Hz tone for about 20 ms every 500 ms (measured here:
 * one frame near -7 dBFS at 399 Hz per beep, then the echo canceller's decaying tail). The
 * beeps are the frames louder than -15 dBFS; their tone and spacing identify the browser.
 */
function beeps(frames: Array<{ mono: number; rmsDbfs: number; frequencyHz: number | null }>): Result {
  const loud = frames.filter((f) => f.rmsDbfs > -15);
  const hz = loud.map((f) => f.frequencyHz ?? 0).sort((a, b) => a - b);
  const gaps = loud.slice(1).map((f, i) => f.mono - loud[i]!.mono).filter((g) => g > 100);
  return {
    beepCount: loud.length,
    beepHz: hz.length ? hz[Math.floor(hz.length / 2)] : null,
    // The median: the jitter buffer may shift one beep by a frame or two when it adapts its depth.
    beepIntervalMs: gaps.length ? Math.round([...gaps].sort((a, b) => a - b)[Math.floor(gaps.length / 2)]!) : null,
  };
}

async function step(out: Record<string, Result>, name: string, fn: () => Promise<Result>): Promise<void> {
  try {
    out[name] = { ok: true, ...(await fn()) };
  } catch (err) {
    out[name] = { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

async function cases(bw: BrowserWorld): Promise<Result> {
  await mkdir(ARTIFACTS, { recursive: true });
  const { world } = bw;
  const intercom = world.get('intercom');
  const handset = world.get('handset');
  const out: Record<string, Result> = {};
  const page = await bw.phone('alice', 'alice');
  await shot(page, '1-login');
  await page.getByTestId('login').click();
  const phoneId = await loggedIn(page);
  await linked(world, 'handset', phoneId);

  // (1) The handset and the intercom are in a call; the browser pulls it.
  await step(out, 'pull', async () => {
    await intercomCallsHandset(world);
    await linked(world, 'intercom', phoneId);
    await page.getByTestId('take-handset').waitFor({ timeout: 5000 });
    await waitUntil(() => !!page, 10, 'page');
    await shot(page, '2-handset-in-call');
    await page.getByTestId('take-handset').click();
    const s = await waitPage(page, (s) => s.call?.state === 'active', 5000, 'browser holds the call');
    await waitUntil(() => handset.endpoint.calls.snapshot()?.state === 'ended', 5000, 'handset leg ended');
    await sleep(200); // past the handset's last frames in the intercom's jitter buffer
    const since = performance.now();
    const pageHz = await pageHears(page, 1200);
    const intercomHz = intercom.sink.frequencyHz(since);
    await shot(page, '3-call-on-phone');
    // D1: the holder may ask for the door; this intercom has no relay, and the page says so.
    await page.getByTestId('door').click();
    const door = await waitPage(page, (s) => s.status.error !== undefined || /Door opened/.test(s.status.text), 3000, 'door answer shown');
    const lastPull = await page.evaluate(() => (globalThis as unknown as { sweep: { lastPull: () => { startedAt: number; firstAudioAt: number } | null } }).sweep.lastPull());
    return {
      phoneState: s.call?.state,
      epoch: intercom.endpoint.calls.snapshot()?.epoch,
      intercomPeer: intercom.endpoint.calls.snapshot()?.peer.endpointId,
      handsetState: handset.endpoint.calls.snapshot()?.state,
      phoneId,
      pageHearsHz: pageHz,
      intercomHearsHz: intercomHz,
      intercomLevelDbfs: intercom.sink.levelDbfs(since),
      ...beeps(intercom.sink.framesSince(since)),
      pullMs: lastPull ? lastPull.firstAudioAt - lastPull.startedAt : null,
      doorStatus: door.status,
    };
  });

  // (1b) The phone reloads the page mid-call (phones do): it comes back with the same identity and
  // takes its call back from the intercom within the C5 grace (L7). Issue 12 item 9.
  await step(out, 'reload', async () => {
    const reloadAt = performance.now();
    await page.reload();
    await loggedIn(page);
    const s = await waitPage(page, (s) => s.call?.state === 'active', 8000, 'the reloaded page holds its call again');
    // Chromium's fake microphone beeps every 500 ms: the first beep the intercom plays after the
    // reload (past the old page's last buffered frames) is the audio coming back.
    const beep = () => intercom.sink.framesSince(reloadAt + 200).find((f) => f.rmsDbfs > -15);
    await waitUntil(() => beep() !== undefined, 8000, 'the intercom hears the browser again');
    await shot(page, '3b-resumed-after-reload');
    return {
      audioBackMs: Math.round(beep()!.mono - reloadAt),
      phoneState: s.call?.state,
      status: s.status.text,
      intercomState: intercom.endpoint.calls.snapshot()?.state,
      intercomPeer: intercom.endpoint.calls.snapshot()?.peer.endpointId,
      epoch: intercom.endpoint.calls.snapshot()?.epoch,
    };
  });

  // (3) The browser sweeps the call back to the handset (push; the handset's user accepts; the browser answers goAway).
  await step(out, 'sweepBack', async () => {
    await linked(world, 'handset', phoneId);
    await waitUntil(() => handset.endpoint.calls.siblingCallsSnapshot().length > 0, 3000, 'handset knows the phone call');
    const invited = waitForEvent(handset.endpoint, 'sweep.invited', () => true, 5000);
    await page.getByTestId('send-handset').click();
    const inv = await invited;
    await handset.endpoint.calls.acceptInvite(inv.sweepId);
    await waitPage(page, (s) => s.call?.state === 'ended', 5000, 'browser leg ended');
    const since = performance.now();
    await sleep(600);
    await shot(page, '4-swept-back');
    const st = await pageState(page);
    return {
      handsetState: handset.endpoint.calls.snapshot()?.state,
      intercomPeer: intercom.endpoint.calls.snapshot()?.peer.endpointId,
      epoch: intercom.endpoint.calls.snapshot()?.epoch,
      intercomHearsHz: intercom.sink.frequencyHz(since),
      handsetHearsHz: handset.sink.frequencyHz(since),
      status: st.status.text,
    };
  });

  // (4) A browser logged in with another account cannot take the call and is told why.
  await step(out, 'otherAccount', async () => {
    const bob = await bw.phone('bob', 'bob');
    // A wrong password first: refused, and the page says so.
    await bob.fill('#password', 'not-the-password');
    await bob.getByTestId('login').click();
    await bob.getByText('Login refused').waitFor({ timeout: 5000 });
    const loginRefused = await bob.getByTestId('status').textContent();
    const passwordCleared = (await bob.inputValue('#password')) === '';
    await shot(bob, '0-login-refused');
    await bob.fill('#password', bw.password('bob'));
    await bob.getByTestId('login').click();
    const bobId = await loggedIn(bob);
    const noCallShown = (await bob.getByText('No call on your account').count()) > 0;
    const attempt = await bob.evaluate(() => (globalThis as unknown as { sweep: { pull: (id: string) => Promise<{ ok: boolean; code?: string; message?: string }> } }).sweep.pull('handset'));
    const st = await pageState(bob);
    await shot(bob, '5-other-account-refused');
    // A reload logs in again with the session token (A8): same endpoint id, no password asked.
    // This time the user blocks the microphone.
    await denyMicrophone(bob);
    await bob.reload();
    const resumedId = await loggedIn(bob);
    const micProblem = await bob.getByTestId('mic-problem').textContent();
    await shot(bob, '5b-resumed-microphone-denied');
    // Everything the page keeps in IndexedDB, as text (a string: this file has no DOM types).
    const stored = await bob.evaluate<string>(`new Promise((resolve, reject) => {
      const open = indexedDB.open('sweep');
      open.onerror = () => reject(new Error('no database'));
      open.onsuccess = () => {
        const all = open.result.transaction('kv').objectStore('kv').getAll();
        all.onsuccess = () => resolve(JSON.stringify(all.result));
      };
    })`);
    await bob.getByTestId('logout').click();
    await bob.getByTestId('login').waitFor({ timeout: 5000 });
    await bob.context().close();
    return {
      loginRefused,
      passwordCleared,
      micProblem,
      resumedSameId: resumedId === bobId,
      passwordStored: stored.includes(bw.password('bob')),
      noCallShown,
      attempt,
      status: st.status,
      handsetState: handset.endpoint.calls.snapshot()?.state,
      intercomPeer: intercom.endpoint.calls.snapshot()?.peer.endpointId,
    };
  });

  // (2) The handset's sweep button pushes the call to the browser; the page rings; the test answers.
  await step(out, 'push', async () => {
    await waitUntil(() => handset.endpoint.calls.snapshot()?.state === 'active', 3000, 'handset active');
    await linked(world, 'intercom', phoneId);
    // S10: the page asks its user, so the push is answered only when the resident answers.
    const pushed = handset.endpoint.calls.push({ to: phoneId });
    pushed.catch(() => undefined);
    await page.getByTestId('ringing').waitFor({ timeout: 5000 });
    await shot(page, '6-ringing');
    await page.getByTestId('answer').click();
    await pushed;
    await waitPage(page, (s) => s.call?.state === 'active', 5000, 'browser holds the pushed call');
    await waitUntil(() => handset.endpoint.calls.snapshot()?.state === 'ended', 5000, 'handset leg ended');
    // The intercom's jitter buffer still plays (and conceals) the handset's last frames for a few
    // ticks after the switch: listen from after that.
    await sleep(200);
    const since = performance.now();
    const pageHz = await pageHears(page, 800);
    await shot(page, '7-pushed-call');
    // Hang up from the phone: the intercom's call ends too.
    await page.getByTestId('hangup').click();
    await waitUntil(() => intercom.endpoint.calls.snapshot()?.state === 'ended', 3000, 'intercom call ended');
    return {
      intercomPeerBeforeHangup: phoneId,
      handsetState: handset.endpoint.calls.snapshot()?.state,
      pageHearsHz: pageHz,
      ...beeps(intercom.sink.framesSince(since)),
      intercomAfterHangup: intercom.endpoint.calls.snapshot()?.state,
    };
  });
  // (6) The door rings the household (H1): the handset and the page ring together; the resident
  // answers on the page (H2), the handset stops with "answered on …", and the page talks to the door.
  await step(out, 'household', async () => {
    await waitUntil(() => intercom.endpoint.calls.snapshot()?.state !== 'active' && handset.endpoint.calls.snapshot()?.state !== 'active', 5000, 'no call');
    const handsetRinging = waitForEvent(handset.endpoint, 'call.state', (e) => e.call.state === 'ringing', 8000);
    const rangAt = performance.now();
    await intercom.endpoint.calls.ringAccount('alice', { doorRights: true });
    await page.getByTestId('incoming').waitFor({ timeout: 8000 });
    const pageRingMs = Math.round(performance.now() - rangAt);
    await handsetRinging;
    const label = await page.getByTestId('incoming-label').textContent();
    const ringingStatus = (await pageState(page)).status.text;
    const ringTone = () => page.evaluate(() => (globalThis as unknown as { sweep: { ringing: () => boolean } }).sweep.ringing());
    const toneWhileRinging = await ringTone();
    await shot(page, '9-household-ringing');
    const handsetStopped = waitForEvent(handset.endpoint, 'call.state', (e) => e.call.state === 'ended', 8000);
    await page.getByTestId('answer-call').click();
    const s = await waitPage(page, (s) => s.call?.state === 'active', 8000, 'the page answered the door');
    const stopped = await handsetStopped;
    await sleep(200);
    const since = performance.now();
    const pageHz = await pageHears(page, 800);
    await shot(page, '10-household-answered-on-phone');
    const result = {
      pageRingMs,
      label,
      ringingStatus,
      phoneState: s.call?.state,
      handsetStopReason: stopped.reason,
      intercomPeer: intercom.endpoint.calls.snapshot()?.peer.endpointId,
      phoneId,
      pageHearsHz: pageHz,
      ...beeps(intercom.sink.framesSince(since)),
      incomingGone: (await page.getByTestId('incoming').count()) === 0,
      toneWhileRinging,
      toneAfterAnswer: await ringTone(),
    };
    await page.getByTestId('hangup').click();
    await waitUntil(() => intercom.endpoint.calls.snapshot()?.state === 'ended', 3000, 'intercom call ended');
    return result;
  });

  // (7) A second phone page opened while the door rings joins the ring (H1); it declines, and only
  // it stops (H4); the handset answers and the first page shows where (H2).
  await step(out, 'householdJoin', async () => {
    await waitUntil(() => intercom.endpoint.calls.snapshot()?.state === 'ended', 5000, 'no call');
    const forks: string[] = [];
    intercom.endpoint.bus.on(forks, 'ring.fork', (e) => forks.push(`${e.endpointId} ${e.state} ${e.reason ?? ''}`));
    const failedTo = (what: string) => (err: unknown) => {
      throw new Error(`${what}: ${String(err).split('\n')[0]} (intercom forks: ${forks.join('; ')})`);
    };
    await intercom.endpoint.calls.ringAccount('alice', { doorRights: true });
    await page.getByTestId('incoming').waitFor({ timeout: 8000 }).catch(failedTo('the first page rings'));
    const second = await bw.phone('alice', 'alice-second');
    const loginAt = performance.now();
    await second.getByTestId('login').click();
    await loggedIn(second);
    await second.getByTestId('incoming').waitFor({ timeout: 8000 }).catch(failedTo('the page opened while ringing rings'));
    intercom.endpoint.bus.removeOwner(forks);
    const joinedMs = Math.round(performance.now() - loginAt);
    await shot(second, '11-opened-while-ringing');
    await second.getByTestId('decline-call').click();
    const declined = await waitPage(second, (s) => s.call?.state === 'ended', 5000, 'the second page declined');
    await sleep(300);
    const stillRinging = { handset: handset.endpoint.calls.snapshot()?.state, page: (await pageState(page)).call?.state, intercom: intercom.endpoint.calls.snapshot()?.state };
    await handset.endpoint.calls.answer();
    const told = await waitPage(page, (s) => s.call?.state === 'ended', 5000, 'the first page stops ringing');
    await shot(page, '12-answered-on-handset');
    const result = {
      joinedMs,
      declinedStatus: declined.status.text,
      stillRinging,
      pageStatus: told.status.text,
      incomingGone: (await page.getByTestId('incoming').count()) === 0,
      intercomPeer: intercom.endpoint.calls.snapshot()?.peer.endpointId,
    };
    await intercom.endpoint.calls.hangup('test over');
    await second.context().close();
    return result;
  });

  // (8) Do not disturb on the page (H7): the door rings the handset only; the page is skipped.
  await step(out, 'dnd', async () => {
    await waitUntil(() => intercom.endpoint.calls.snapshot()?.state === 'ended', 5000, 'no call');
    await page.getByTestId('dnd').check();
    await waitPage(page, (s) => /Do not disturb/.test(s.status.text), 3000, 'the page says it will not ring');
    const skipped = waitForEvent(intercom.endpoint, 'ring.fork', (e) => e.endpointId === phoneId && e.state !== 'linking' && e.state !== 'inviting', 8000);
    await intercom.endpoint.calls.ringAccount('alice');
    const fork = await skipped;
    await waitUntil(() => handset.endpoint.calls.snapshot()?.state === 'ringing', 5000, 'the handset rings');
    const pageCall = (await pageState(page)).call?.state ?? null;
    const incomingShown = (await page.getByTestId('incoming').count()) > 0;
    await intercom.endpoint.calls.hangup('test over');
    await page.getByTestId('dnd').uncheck();
    return { fork: fork.state, pageCall, incomingShown };
  });

  // (9) Recent calls (A15): every household call above left one record; a ring that everyone
  // declines is missed, and the page lists it first, marked.
  await step(out, 'recent', async () => {
    await noCallLeft(world);
    const rung = waitForEvent(handset.endpoint, 'call.state', (e) => e.call.state === 'ringing', 8000);
    await intercom.endpoint.calls.ringAccount('alice', { doorRights: true });
    await page.getByTestId('incoming').waitFor({ timeout: 8000 });
    await rung;
    await page.getByTestId('decline-call').click();
    await handset.endpoint.calls.reject('not now');
    await page.getByTestId('recent-missed').first().waitFor({ timeout: 10_000 });
    await shot(page, '13-recent-calls');
    const rows = page.getByTestId('recent-calls').locator('li');
    return { rows: await rows.allInnerTexts(), missed: await page.getByTestId('recent-missed').count(), answered: await page.getByTestId('recent-call').count() };
  });

  // (10) A closed page still rings, and the tap on its notification answers (A16): web-push-step.ts.
  await step(out, 'webPush', () => webPushStep(bw));

  // (5) The handset crashes mid-call: the page takes the call over without a grant (S9, L5, C5).
  await step(out, 'takeover', async () => {
    await intercomCallsHandset(world);
    await linked(world, 'intercom', phoneId);
    await waitPage(page, (s) => s.siblingCalls.length > 0, 5000, 'the page knows the handset call');
    const crashedAt = performance.now();
    await handset.endpoint.crash();
    await page.getByTestId('take-handset').click();
    const s = await waitPage(page, (s) => s.call?.state === 'active', 10_000, 'the page took over the dead handset\'s call');
    const beep = () => intercom.sink.framesSince(crashedAt + 200).find((f) => f.rmsDbfs > -15);
    await waitUntil(() => beep() !== undefined, 8000, 'the intercom hears the browser');
    await shot(page, '8-taken-over-from-crashed-handset');
    return {
      phoneState: s.call?.state,
      status: s.status.text,
      intercomPeer: intercom.endpoint.calls.snapshot()?.peer.endpointId,
      intercomState: intercom.endpoint.calls.snapshot()?.state,
      audioBackMs: Math.round(beep()!.mono - crashedAt),
    };
  });
  return out;
}

/** `n` pulls by the browser, each followed by the handset pulling the call back. */
async function bench(bw: BrowserWorld, n: number): Promise<Result> {
  const { world } = bw;
  const handset = world.get('handset');
  const page = await bw.phone('alice', 'alice');
  await page.getByTestId('login').click();
  const phoneId = await loggedIn(page);
  await linked(world, 'handset', phoneId);
  await intercomCallsHandset(world);
  const samples: number[] = [];
  let prevStartedAt = -1;
  const slow: Array<Record<string, number>> = [];
  for (let i = 0; i < n; i++) {
    await linked(world, 'intercom', phoneId);
    await waitPage(page, (s) => s.siblingCalls.length > 0 && s.links.includes('intercom'), 5000, 'page knows the handset call');
    await page.getByTestId('take-handset').click();
    await waitPage(page, (s) => s.call?.state === 'active', 5000, 'browser holds the call');
    // This pull's timing: a lastPull that started after the previous one.
    const lp = await page.waitForFunction(
      (prev) => {
        const p = (globalThis as unknown as { sweep: { lastPull: () => { startedAt: number; firstAudioAt: number } | null } }).sweep.lastPull();
        return p && p.startedAt > prev ? p : null;
      },
      prevStartedAt,
      { timeout: 5000 },
    );
    const v = (await lp.jsonValue()) as { startedAt: number; firstAudioAt: number; steps: Record<string, number> };
    prevStartedAt = v.startedAt;
    samples.push(v.firstAudioAt - v.startedAt);
    if (v.firstAudioAt - v.startedAt > 150) slow.push(v.steps);
    await waitUntil(() => handset.endpoint.calls.snapshot()?.state === 'ended', 5000, 'handset leg ended');
    await waitUntil(() => handset.endpoint.calls.siblingCallsSnapshot().length > 0, 3000, 'handset knows the phone call');
    await handset.endpoint.calls.pull({ from: phoneId });
    await waitPage(page, (s) => s.call?.state === 'ended', 5000, 'browser leg ended');
  }
  return { samples, slow };
}

async function main(): Promise<void> {
  const mode = process.argv[2] ?? 'cases';
  const bw = await startBrowserWorld();
  let result: Result;
  try {
    // `webpush` runs step (10) alone, for a quicker look at A16.
    result = mode === 'bench' ? await bench(bw, Number(process.argv[3] ?? 20)) : mode === 'webpush' ? await webPushStep(bw) : await cases(bw);
  } finally {
    await bw.close();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stdout.write(`${JSON.stringify({ fatal: err instanceof Error ? err.stack ?? err.message : String(err) })}\n`);
    process.exit(1);
  },
);
