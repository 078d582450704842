import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import playwright, { type Browser, type Page } from 'playwright-core';
import { decodeQrSvg } from './support/qr.js';
import { startStack, type TestStack } from './support/stack.js';

// The /demo page in a real browser: Debian's chromium, driven by playwright-core. Screenshots go
// to artifacts/ (not committed) for a person to look at.
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ARTIFACTS = `${ROOT}artifacts/`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const PHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1';

let demoDir: string;
let browser: Browser;
let stack: TestStack;

beforeAll(async () => {
  // Never a silent pass: without a browser this suite fails and says how to get one.
  if (!existsSync(CHROMIUM)) throw new Error(`The browser tests need Chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run does this).`);
  demoDir = await mkdtemp(`${tmpdir()}/idv-demo-`);
  const build = promisify(execFile)(process.execPath, [`${ROOT}node_modules/vite/bin/vite.js`, 'build', '--config', 'demo/vite.config.ts', '--outDir', demoDir, '--emptyOutDir'], { cwd: ROOT });
  [browser] = await Promise.all([playwright.chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS }), build, mkdir(ARTIFACTS, { recursive: true })]);
  stack = await startStack({}, {}, { demoDir });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
  if (demoDir) await rm(demoDir, { recursive: true, force: true });
});

/** A fresh page on /demo/ that records anything the browser complains about (script errors, CSP). */
async function openDemo(): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 900, height: 720 } });
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  await page.goto(new URL('/demo/', stack.url).href);
  return { page, problems };
}

async function clickStart(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Start verification' }).click();
  // Enabled again once the answer is shown.
  await page.waitForSelector('#start:not([disabled])');
}

describe('the /demo page in Chromium', () => {
  it('starts a verification, shows the QR code and link, and the link leads to the same session', async () => {
    const { page, problems } = await openDemo();
    await clickStart(page);
    await page.locator('#handoff').waitFor({ state: 'visible' });

    const sessionId = (await page.locator('#session-id').textContent()) ?? '';
    const captureUrl = (await page.locator('#capture-link').getAttribute('href')) ?? '';
    expect(stack.emulator.sessions.get(sessionId)?.metadata).toEqual({ externalUserId: 'dev-user' });
    expect(new URL(captureUrl).pathname).toBe('/capture');
    expect(await page.locator('#countdown').textContent()).toMatch(/^(\d+:)?\d{1,2}:\d{2}$/);

    // The QR code the browser shows reads back as the capture link.
    const qrSrc = (await page.locator('#qr').getAttribute('src')) ?? '';
    // The browser decoded and drew the image (the tests compile without the DOM typings).
    const drawn = await page.locator('#qr').evaluate((img) => (img as unknown as { complete: boolean; naturalWidth: number }).naturalWidth > 0);
    expect(drawn).toBe(true);
    expect(decodeQrSvg(decodeURIComponent(qrSrc.replace(/^data:image\/svg\+xml;charset=utf-8,/, '')))).toBe(captureUrl);
    await page.screenshot({ path: `${ARTIFACTS}demo.png`, fullPage: true });

    // Desktop: the capture page, then "continue on this device".
    await page.locator('#capture-link').click();
    await page.waitForURL((url) => url.pathname === '/capture');
    await page.screenshot({ path: `${ARTIFACTS}capture.png`, fullPage: true });
    await page.locator('#continue').click();
    await page.waitForURL((url) => url.pathname === '/mobile');
    expect(await page.locator('#session-id').textContent()).toBe(sessionId);
    expect(problems).toEqual([]);
    await page.close();

    // A phone opening the same capture link lands on the session directly.
    const phone = await browser.newContext({ userAgent: PHONE, viewport: { width: 390, height: 844 } });
    const phonePage = await phone.newPage();
    await phonePage.goto(captureUrl);
    expect(new URL(phonePage.url()).pathname).toBe('/mobile');
    expect(await phonePage.locator('#session-id').textContent()).toBe(sessionId);
    await phone.close();
  });

  it('shows a readable message when the platform fails', async () => {
    const { page, problems } = await openDemo();

    stack.emulator.inject('session', { kind: 'html' });
    await clickStart(page);
    await page.locator('#error-code', { hasText: 'IDV_FAILED' }).waitFor();
    expect(await page.locator('#error-title').textContent()).toBe("Verification can't start right now");

    stack.emulator.inject('session', { kind: 'status', status: 503, headers: { 'retry-after': '2' } });
    await clickStart(page);
    await page.locator('#error-code', { hasText: 'IDV_UNAVAILABLE' }).waitFor();
    expect(await page.locator('#error-title').textContent()).toBe('The verification service is busy');
    expect(await page.locator('#error-detail').textContent()).toBe('Try again in 2 seconds.');
    expect(await page.locator('#handoff').isHidden()).toBe(true);
    await page.screenshot({ path: `${ARTIFACTS}demo-error.png`, fullPage: true });

    // Once the Retry-After has passed, the next attempt succeeds and replaces the message with the handoff.
    await sleep(2000);
    await clickStart(page);
    await page.locator('#handoff').waitFor({ state: 'visible' });
    expect(await page.locator('#error').isHidden()).toBe(true);
    // The failed answers reach the browser as 200s with GraphQL errors: nothing else is logged.
    expect(problems).toEqual([]);
    await page.close();
  });
});
