import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { World, LAB_CAST } from '../../lab/world.ts';
import { waitUntil } from '../../lab/story.ts';
import { createLogger } from '../../platform/log.ts';
import { buildWeb } from '../../phone/build.ts';

/** FINDINGS.md: the headless Chromium flags that work here (plus loopback candidates). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];

/**
 * Runs `node --import tsx <script> <args>` in a fresh network namespace with only `lo` up
 * (`unshare -n`), so neither the world nor Chromium can reach anything but loopback. Resolves
 * with the last JSON line the script printed.
 */
export function runIsolated(script: string, args: string[], opts: { timeoutMs: number; onLine?: (line: string) => void }): Promise<Record<string, unknown>> {
  const node = process.execPath;
  const cmd = `ip link set lo up && exec "${node}" --import tsx "${script}" ${args.map((a) => `'${a}'`).join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['-n', 'sh', '-c', cmd], { cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] });
    let last: Record<string, unknown> | undefined;
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        opts.onLine?.(line);
        if (line.startsWith('{')) {
          try {
            last = JSON.parse(line) as Record<string, unknown>;
          } catch {
            // not ours
          }
        }
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (last) resolve(last);
      else reject(new Error(`${script} exited ${code ?? signal} without a result`));
    });
  });
}

export interface BrowserWorld {
  world: World;
  browser: Browser;
  url: string;
  password(account: string): string;
  /** A fresh browser profile (its own IndexedDB: identity, session) on the phone page, logged in. */
  phone(account: string, name: string): Promise<Page>;
  close(): Promise<void>;
}

/** The lab's intercom and handset, plus bob (a buddy of alice who is not alice), and headless Chromium. */
export async function startBrowserWorld(opts: { sweepTimeoutMs?: number; logLevel?: string } = {}): Promise<BrowserWorld> {
  await buildWeb({ minify: false });
  const world = await World.start({
    accounts: [...LAB_CAST.accounts, { name: 'bob', displayName: 'Bob (flat 5)' }],
    buddies: [...LAB_CAST.buddies, ['alice', 'bob'], ['bob', 'door']],
    endpoints: LAB_CAST.endpoints.filter((e) => e.id !== 'phone').map((e) => ({ ...e, pushTo: [] })),
    log: createLogger({ level: opts.logLevel ?? process.env.SWEEP_TEST_LOG ?? 'silent', destination: process.stderr }),
    sweepTimeoutMs: opts.sweepTimeoutMs ?? 3000,
    // A16: the runner's local push service is plain http on loopback.
    push: { allowLoopbackHttp: true },
  });
  let browser: Browser;
  try {
    // playwright makes a fresh temporary user-data dir per launch, and every context has its own storage.
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS, headless: true });
  } catch (err) {
    await world.close();
    throw err;
  }
  const contexts: BrowserContext[] = [];
  const url = world.server.httpUrl;
  const password = (account: string): string => {
    const p = world.passwords.get(account);
    if (!p) throw new Error(`no password for ${account}`);
    return p;
  };
  return {
    world,
    browser,
    url,
    password,
    async phone(account, _name) {
      const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
      contexts.push(context);
      const page = await context.newPage();
      page.on('console', (m) => {
        if (process.env.SWEEP_TEST_LOG && process.env.SWEEP_TEST_LOG !== 'silent') process.stderr.write(`[${_name}] ${m.text()}\n`);
      });
      page.on('pageerror', (e) => process.stderr.write(`[${_name}] page error: ${e.message}\n`));
      await page.goto(url);
      await page.getByTestId('login').waitFor();
      await page.fill('#username', account);
      await page.fill('#password', password(account));
      return page;
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => undefined);
      await browser.close().catch(() => undefined);
      await world.close();
    },
  };
}

/** From the next navigation on, getUserMedia rejects NotAllowedError, as after a user's "Block". */
export async function denyMicrophone(page: Page): Promise<void> {
  await page.context().addInitScript({
    content: `navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));`,
  });
}

/** Waits until the page's endpoint is logged in and returns its endpoint id. */
export async function loggedIn(page: Page): Promise<string> {
  await page.waitForFunction(() => (globalThis as unknown as { sweep: { ready: boolean } }).sweep.ready, null, { timeout: 10_000 });
  return page.evaluate(() => (globalThis as unknown as { sweep: { endpointId: string } }).sweep.endpointId);
}

export interface PageState {
  call: { state: string; peer: { endpointId: string }; epoch: number } | null;
  status: { text: string; error?: { code: string } };
  siblingCalls: Array<{ endpointId: string }>;
  links: string[];
}

export function pageState(page: Page): Promise<PageState> {
  return page.evaluate(() => (globalThis as unknown as { sweep: { state: () => PageState } }).sweep.state());
}

export function pageHearing(page: Page): Promise<{ hz: number | null; db: number }> {
  return page.evaluate(() => (globalThis as unknown as { sweep: { hearing: () => { hz: number | null; db: number } } }).sweep.hearing());
}

export async function waitPage(page: Page, cond: (s: PageState) => boolean, ms: number, what: string): Promise<PageState> {
  const deadline = Date.now() + ms;
  for (;;) {
    const s = await pageState(page);
    if (cond(s)) return s;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms (page: ${JSON.stringify({ call: s.call, status: s.status, links: s.links })})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The node side's link to the browser is up (both directions verified). */
export function linked(world: World, nodeId: string, browserId: string, ms = 10_000): Promise<void> {
  return waitUntil(() => world.get(nodeId).endpoint.links.current(browserId) !== undefined, ms, `${nodeId} ↔ ${browserId} link`);
}

/** Between steps: no call is left at the intercom or the handset. */
export async function noCallLeft(world: BrowserWorld['world']): Promise<void> {
  const intercom = world.get('intercom').endpoint;
  const s = intercom.calls.snapshot()?.state;
  if (s && s !== 'ended') await intercom.calls.hangup('the previous step left a call');
  await waitUntil(() => ['intercom', 'handset'].every((id) => (world.get(id).endpoint.calls.snapshot()?.state ?? 'ended') === 'ended'), 5000, 'no call');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
