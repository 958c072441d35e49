// Issue 17: the phone page in real Chromium on mobile data (symmetric NAT), the flat behind the
// home router; links only through the TURN relay the access server hands out (A13).
import t, { type Test } from 'tap';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { natNetProblem, type NatNet } from '../helpers/nat-net.ts';
import { flat, turnFlags, type Flat } from '../helpers/nat-flat.ts';
import { CHROMIUM_FLAGS, loggedIn, pageHearing, waitPage } from '../browser/harness.ts';
import { callOf, isEvent } from '../../lab/process-world.ts';
import { buildWeb } from '../../phone/build.ts';

/** Headless Chromium started inside the mobile namespace (a wrapper script runs it there). */
async function mobileBrowser(t: Test, net: NatNet, origin: string): Promise<Browser> {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-nat-chromium-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const wrapper = join(dir, 'chromium-in-mobile');
  await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${net.ns.mobile} /usr/bin/chromium "$@"\n`);
  await chmod(wrapper, 0o755);
  // Plain http to the server's address is not a secure context; a real deployment serves https (README).
  const browser = await chromium.launch({ executablePath: wrapper, args: [...CHROMIUM_FLAGS, `--unsafely-treat-insecure-origin-as-secure=${origin}`], headless: true });
  t.teardown(() => browser.close());
  return browser;
}

async function phonePage(t: Test, f: Flat): Promise<{ page: Page; phoneId: string }> {
  const origin = f.world.url.replace(/^ws:/, 'http:').replace(/\/access$/, '');
  const browser = await mobileBrowser(t, f.net, origin);
  const page = await (await browser.newContext({ isMobile: true, hasTouch: true })).newPage();
  page.on('console', (m) => {
    if (process.env.SWEEP_TEST_LOG && process.env.SWEEP_TEST_LOG !== 'silent') process.stderr.write(`[page] ${m.text()}\n`);
  });
  await page.goto(`${origin}/`);
  await page.getByTestId('login').waitFor();
  await page.fill('#username', 'alice');
  await page.fill('#password', f.world.passwords.alice!);
  await page.getByTestId('login').click();
  return { page, phoneId: await loggedIn(page) };
}

/** The intercom rings the handset, the handset answers, the page takes the call by sweep and is heard. */
async function takeTheCall(t: Test, f: Flat, given?: Page, givenId?: string): Promise<void> {
  const { page, phoneId } = given && givenId ? { page: given, phoneId: givenId } : await phonePage(t, f);
  await waitPage(page, (s) => s.links.includes('handset'), 30_000, 'the page linked to the handset through the relay');
  await f.intercom.command({ cmd: 'call', to: 'handset', doorRights: true });
  await f.handset.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ringing'), 10_000, 'ringing');
  await f.handset.command({ cmd: 'answer' });
  await waitPage(page, (s) => s.siblingCalls.length > 0 && s.links.includes('intercom'), 30_000, 'the page sees the call and is linked to the intercom');
  const mark = f.handset.mark();
  await page.getByTestId('take-handset').click();
  await waitPage(page, (s) => s.call?.state === 'active', 15_000, 'the page holds the call');
  // The far end moves the call (ending the handset leg) only once it hears the page (S7).
  await f.handset.waitFor(isEvent('call.state', (l) => callOf(l)?.state === 'ended'), 10_000, 'handset leg ended', mark);
  t.equal(callOf(await f.intercom.command({ cmd: 'state' }))?.peer.endpointId, phoneId, 'the intercom talks to the page');
  await new Promise((r) => setTimeout(r, 1000));
  const heard = await pageHearing(page);
  t.ok(heard.hz !== null && Math.abs(heard.hz - 330) <= 15, `the page hears the intercom's 330 Hz through the relay (heard ${String(heard.hz)})`);
  const paths = (await f.intercom.command({ cmd: 'state' })).paths as Record<string, { remote: string } | null>;
  t.equal(paths[phoneId]?.remote, 'relay', 'the intercom reaches the page at its relayed address');
}

// Namespaces, coturn and several flats in turn; the L9 cases wait a minute for fresh credentials.
t.setTimeout(600_000);

void t.test('the phone page away from home, in real Chromium through real NAT (issue 17)', async (t) => {
  const problem = natNetProblem();
  if (problem) {
    t.fail(problem);
    return;
  }
  await buildWeb({ minify: false });

  await t.test('without TURN the page says which device it cannot reach and why, not "no call"', async (t) => {
    const f = await flat(t, () => [], undefined, { nodePhone: false });
    const { page } = await phonePage(t, f);
    await page.getByTestId('unreachable').waitFor({ timeout: 30_000 });
    const text = await page.getByTestId('unreachable').innerText();
    t.match(text, /handset is online, but this phone cannot reach it \(.+\)/, `the page says: ${text.split('\n')[0]}`);
    t.match(text, /TURN server/, 'and what would fix it');
  });

  await t.test('with TURN from the access server the page on mobile data links through the relay, takes the call by sweep and is heard', async (t) => {
    const f = await flat(t, (net, file) => turnFlags(net, file), undefined, { nodePhone: false });
    await takeTheCall(t, f);
  });

  await t.test('fresh TURN credentials: the page remakes its relayed links with them before the old ones expire (L9)', async (t) => {
    // 120 s credentials: the access server sends fresh ones a minute before they expire (A13).
    const f = await flat(t, (net, file) => turnFlags(net, file, '--turn-ttl', '120'), undefined, { nodePhone: false });
    const { page } = await phonePage(t, f);
    const remade = new Promise<string>((resolve) => page.on('console', (m) => {
      if (m.text().includes('(L9)')) resolve(m.text());
    }));
    await waitPage(page, (s) => s.links.includes('handset'), 30_000, 'the page linked to the handset through the relay');
    const said = await Promise.race([remade, new Promise<string>((r) => setTimeout(() => r('nothing within 90 s'), 90_000).unref())]);
    t.match(said, /relayed link remade with fresh TURN credentials \(L9\)/, 'the page remakes its relayed link when fresh credentials arrive');
    await waitPage(page, (s) => s.links.includes('handset'), 30_000, 'and is linked again (L4)');
  });

  await t.test('with UDP blocked on the mobile network, the page says the network blocks UDP and what to try (L8)', async (t) => {
    const f = await flat(t, (net, file) => turnFlags(net, file), (net) => net.blockMobileUdp(), { nodePhone: false });
    const { page } = await phonePage(t, f);
    await page.getByTestId('unreachable').waitFor({ timeout: 30_000 });
    const text = await page.getByTestId('unreachable').innerText();
    t.match(text, /handset is online, but this phone cannot reach it \(no link to handset opened within \d+ ms: this network lets calls out only over TURN\/TCP or TLS \(UDP is blocked\)/, `the page says: ${text.split('\n')[0]}`);
    t.match(text, /Try mobile data or another Wi-Fi/, 'and what to try');
  });

  // Chromium's checks over TURN/TCP and TURN/TLS carry a zero ICE tie-breaker, which libjuice (the
  // devices' ICE) answers with 400 (paullouisageneau/libjuice#355, fix not released); seen here as
  // "Controlling and controlled attributes mismatch in request" in the device's libjuice log.
  await t.test('with UDP blocked on the mobile network, the page links over TURN/TCP, takes the call by sweep and is heard', { todo: 'blocked on libjuice#355: a zero ICE tie-breaker from Chromium over TURN/TCP is refused with 400' }, async (t) => {
    const f = await flat(t, (net, file) => turnFlags(net, file), (net) => net.blockMobileUdp(), { nodePhone: false });
    const { page, phoneId } = await phonePage(t, f);
    await takeTheCall(t, f, page, phoneId);
  });
});
