import { decodeQrSvg } from './support/qr.js';
import { startStack, type TestStack } from './support/stack.js';

const DESKTOP = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36';
const PHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1';

interface Handoff {
  sessionId: string;
  captureUrl: string;
  mobileUrl: string;
}

describe("the emulator's hosted pages", () => {
  let stack: TestStack;
  let handoff: Handoff;
  beforeAll(async () => {
    stack = await startStack();
    handoff = (await stack.startVerification({ workflow: 'age' })).body.data.startVerification;
  });
  afterAll(() => stack.close());

  const get = (url: string, userAgent = DESKTOP) => fetch(url, { headers: { 'user-agent': userAgent }, redirect: 'manual' });

  it('/capture on a desktop shows a QR code of the mobile URL and a link to it', async () => {
    const response = await get(handoff.captureUrl);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    // No other page may frame it and read what it shows.
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await response.text();
    expect(decodeQrSvg(/<svg[\s\S]*<\/svg>/.exec(html)?.[0] ?? '')).toBe(handoff.mobileUrl);
    expect(html).toContain(`href="${handoff.mobileUrl.replaceAll('&', '&#38;')}"`);
  });

  it('/capture on a phone redirects to the mobile URL', async () => {
    const response = await get(handoff.captureUrl, PHONE);
    expect(response.status).toBe(302);
    expect(response.headers.get('location')).toBe(handoff.mobileUrl);
  });

  // Node refuses a newline or a character past Latin-1 in a header: the redirect must not carry them raw.
  it.each([
    ['a newline', '/mo\nbile', '/mobile'],
    ['a character past Latin-1', '/mobile?x=Ā', '/mobile?x=%C4%80'],
  ])('/capture on a phone with %s in the url redirects to it encoded, and keeps serving', async (_case, rest, expected) => {
    const response = await get(`${stack.emulator.url}/capture?url=${encodeURIComponent(`${stack.emulator.url}${rest}`)}`, PHONE);
    expect(response.status).toBe(302);
    expect(response.headers.get('location')).toBe(`${stack.emulator.url}${expected}`);
    expect((await get(handoff.captureUrl, PHONE)).status).toBe(302);
  });

  it.each([
    ['no url', () => ''],
    ['a script URL', () => 'javascript:alert(1)'],
    ['another page', () => `${stack.emulator.url}/login`],
    ['another host', () => 'https://evil.example/mobile?authorization=x&sessionId=y'],
  ])('/capture with %s is refused, on a phone too', async (_case, target) => {
    const response = await get(`${stack.emulator.url}/capture?url=${encodeURIComponent(target())}`, PHONE);
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
  });

  it('/mobile shows the session and workflow its token opens', async () => {
    const response = await get(handoff.mobileUrl);
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain(`<dd id="session-id">${handoff.sessionId}</dd>`);
    expect(html).toContain('<dd id="workflow-id">e3b0c442-98fc-1c14-9afb-f4c8996fb924</dd>');
    expect(html).not.toContain('Token tr-');
  });

  it('/mobile refuses a wrong token, another session and an expired token', async () => {
    const other = (await stack.startVerification()).body.data.startVerification as Handoff;
    const tampered = new URL(handoff.mobileUrl);
    tampered.searchParams.set('authorization', 'Token tr-forged');
    const crossed = new URL(handoff.mobileUrl);
    crossed.searchParams.set('sessionId', other.sessionId);
    expect((await get(tampered.href)).status).toBe(401);
    expect((await get(crossed.href)).status).toBe(401);

    stack.emulator.expireTokens();
    const expired = await get(other.mobileUrl);
    expect(expired.status).toBe(401);
    expect(await expired.text()).toContain('invalid or has expired');
  });
});
