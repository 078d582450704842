import { buildHandoffUrls, handoffUrlsFor } from '../src/handoff.js';

const PUBLIC = 'https://idv.example.com';

describe('buildHandoffUrls', () => {
  it('encodes a real-looking token with %20, and twice inside the capture URL', () => {
    const { mobileUrl, captureUrl } = buildHandoffUrls(PUBLIC, 'Token tr-pn7u6f5w', '68a72388660070d96275a8c2');
    expect(mobileUrl).toBe('https://idv.example.com/mobile?authorization=Token%20tr-pn7u6f5w&sessionId=68a72388660070d96275a8c2');
    expect(captureUrl).toBe(
      'https://idv.example.com/capture?url=https%3A%2F%2Fidv.example.com%2Fmobile%3Fauthorization%3DToken%2520tr-pn7u6f5w%26sessionId%3D68a72388660070d96275a8c2',
    );
    expect(mobileUrl).not.toContain('+');
  });

  it.each([
    ['spaces', 'Token tr-a b  c'],
    ['plus', 'Token tr-a+b++c'],
    ['slash and equals', 'Token tr-ab/cd==/'],
    ['ampersand', 'Token tr-a&sessionId=evil'],
    ['percent', 'Token tr-100%25%'],
    ['question mark and hash', 'Token tr-a?b#c'],
    ['every special at once', ' +/=&%?#:@ '],
  ])('round-trips a token with %s exactly', (_name, token) => {
    const sessionId = 'sess/1+2 3&x=y';
    const { mobileUrl, captureUrl } = buildHandoffUrls(PUBLIC, token, sessionId);

    const mobile = new URL(mobileUrl);
    expect(mobile.origin + mobile.pathname).toBe('https://idv.example.com/mobile');
    expect([...mobile.searchParams.keys()]).toEqual(['authorization', 'sessionId']);
    expect(mobile.searchParams.get('authorization')).toBe(token);
    expect(mobile.searchParams.get('sessionId')).toBe(sessionId);
    // A plain percent-decode (what the SDKs do) must give the same token as form decoding.
    const rawAuthorization = /authorization=([^&]*)/.exec(mobileUrl)?.[1] ?? '';
    expect(decodeURIComponent(rawAuthorization)).toBe(token);

    const capture = new URL(captureUrl);
    expect(capture.pathname).toBe('/capture');
    expect([...capture.searchParams.keys()]).toEqual(['url']);
    expect(capture.searchParams.get('url')).toBe(mobileUrl);
    expect(decodeURIComponent(captureUrl.split('?url=')[1] ?? '')).toBe(mobileUrl);
  });

  it('keeps a path prefix on the public URL and ignores a trailing slash', () => {
    const { mobileUrl, captureUrl } = buildHandoffUrls('https://example.com/idv/', 'T', 'S');
    expect(mobileUrl).toBe('https://example.com/idv/mobile?authorization=T&sessionId=S');
    expect(captureUrl.startsWith('https://example.com/idv/capture?url=https%3A%2F%2Fexample.com%2Fidv%2Fmobile')).toBe(true);
  });
});

describe('handoffUrlsFor (a mobile URL the platform returned)', () => {
  it('keeps the mobile URL exactly and builds the capture URL with the same encoding rule', () => {
    const mobileUrl = 'https://idv.example.com/mobile?authorization=Token%20tr-pn7u6f5w&sessionId=68a72388660070d96275a8c2';
    expect(handoffUrlsFor(mobileUrl)).toEqual(buildHandoffUrls(PUBLIC, 'Token tr-pn7u6f5w', '68a72388660070d96275a8c2'));
  });

  it.each([
    ['a path prefix before /mobile', 'https://example.com/idv/mobile?sessionId=S', 'https://example.com/idv/capture?url='],
    ['another path: the origin only', 'https://example.com/m/abc?sessionId=S', 'https://example.com/capture?url='],
    ['a port and an upper-case host', 'HTTPS://Example.COM:8443/mobile?sessionId=S', 'https://example.com:8443/capture?url='],
  ])('builds the capture page on the returned URL: %s', (_name, mobileUrl, prefix) => {
    const urls = handoffUrlsFor(mobileUrl);
    expect(urls.mobileUrl).toBe(mobileUrl);
    expect(urls.captureUrl).toBe(`${prefix}${encodeURIComponent(mobileUrl)}`);
    expect(new URL(urls.captureUrl).searchParams.get('url')).toBe(mobileUrl);
  });
});
