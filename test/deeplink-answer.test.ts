import { parseTimestamp, readDeeplinkAnswer } from '../src/idv/deeplink.js';
import { canonicalLocale } from '../src/locale.js';

describe('readDeeplinkAnswer', () => {
  const url = 'https://idv.example.com/mobile?authorization=Token%20tr-x&sessionId=68a72388660070d96275a8c2';

  it('reads the contract example', () => {
    const answer = readDeeplinkAnswer({ url, createdAt: '2026-11-27T23:00:00Z', expiresAt: '2026-11-28T00:00:00Z', workflowIds: ['wf'] });
    expect(answer).toEqual({ url, sessionId: '68a72388660070d96275a8c2', expiresAt: new Date('2026-11-28T00:00:00Z') });
  });

  it('decodes a percent-encoded session id', () => {
    const answer = readDeeplinkAnswer({ url: 'http://idv.internal/mobile?sessionId=a%2Fb', expiresAt: '2026-11-28T00:00:00Z' });
    expect(answer).toMatchObject({ sessionId: 'a/b' });
  });

  it.each<[string, unknown]>([
    ['null', null],
    ['an array', [url]],
    ['a url that is not a string', { url: 42, expiresAt: '2026-11-28T00:00:00Z' }],
    ['a url with a newline', { url: `${url}\n`, expiresAt: '2026-11-28T00:00:00Z' }],
    ['a url of 9000 characters', { url: `${url}&pad=${'a'.repeat(9000)}`, expiresAt: '2026-11-28T00:00:00Z' }],
    ['a relative url', { url: '/mobile?sessionId=abc', expiresAt: '2026-11-28T00:00:00Z' }],
    ['a url on another scheme', { url: 'intent://mobile?sessionId=abc', expiresAt: '2026-11-28T00:00:00Z' }],
    ['no sessionId', { url: 'https://idv.example.com/mobile?authorization=x', expiresAt: '2026-11-28T00:00:00Z' }],
    ['a sessionId with a space', { url: 'https://idv.example.com/mobile?sessionId=a%20b', expiresAt: '2026-11-28T00:00:00Z' }],
    ['a sessionId in the fragment only', { url: 'https://idv.example.com/mobile#sessionId=abc', expiresAt: '2026-11-28T00:00:00Z' }],
    ['an unparseable expiresAt', { url, expiresAt: 'soon' }],
    ['a url with markup a client could render', { url: `${url}&x="><svg/onload=alert(1)>`, expiresAt: '2026-11-28T00:00:00Z' }],
    ['a url with a single quote', { url: `${url}&x='onmouseover=alert(1)'`, expiresAt: '2026-11-28T00:00:00Z' }],
    ['a url with credentials', { url: 'https://user:pass@idv.example.com/mobile?sessionId=abc', expiresAt: '2026-11-28T00:00:00Z' }],
  ])('refuses %s', (_name, body) => {
    expect(readDeeplinkAnswer(body)).toEqual({ problem: expect.any(String) });
  });
});

describe('parseTimestamp', () => {
  it.each([
    ['2026-11-28T00:00:00Z', '2026-11-28T00:00:00.000Z'],
    ['2026-11-28T00:00:00.123456Z', '2026-11-28T00:00:00.123Z'],
    ['2026-11-28T01:30:00+01:30', '2026-11-28T00:00:00.000Z'],
    ['2026-11-27T19:00:00-0500', '2026-11-28T00:00:00.000Z'],
    ['2026-11-28 00:00:00z', '2026-11-28T00:00:00.000Z'],
    // No offset: read as UTC, never as the gateway's local time.
    ['2026-11-28T00:00:00', '2026-11-28T00:00:00.000Z'],
    ['2028-02-29T00:00Z', '2028-02-29T00:00:00.000Z'],
    // The last instant RFC 3339 (a four-digit year) can write.
    ['9999-12-31T23:59:59.999999Z', '9999-12-31T23:59:59.999Z'],
    ['9999-12-31T23:30:00+01:00', '9999-12-31T22:30:00.000Z'],
  ])('reads %j', (value, iso) => {
    expect(parseTimestamp(value)?.toISOString()).toBe(iso);
  });

  it.each(['', '1', '1764288000', 'tomorrow', '2026-11-28', '2026-02-30T00:00:00Z', '2026-13-01T00:00:00Z', '2026-11-28T24:00:00Z', '2026-11-28T00:00:60Z', '2026-11-28T00:00:00+25:00', 'Sat, 28 Nov 2026 00:00:00 GMT', '9999-12-31T23:30:00-01:00'])(
    'refuses %j',
    (value) => {
      expect(parseTimestamp(value)).toBeNull();
    },
  );
});

describe('canonicalLocale', () => {
  it.each([
    ['en', 'en'],
    ['EN-us', 'en-US'],
    ['de-CH', 'de-CH'],
    ['zh-hant-tw', 'zh-Hant-TW'],
    ['sr-Latn-RS', 'sr-Latn-RS'],
    ['en-u-ca-gregory', 'en-u-ca-gregory'],
  ])('accepts %j as %j', (value, canonical) => {
    expect(canonicalLocale(value)).toBe(canonical);
  });

  it.each(['', ' en', 'en_US', 'english please', 'x-private', 'i-klingon', 'en--US', '12', `en-${'a'.repeat(70)}`])('refuses %j', (value) => {
    expect(canonicalLocale(value)).toBeNull();
  });
});
