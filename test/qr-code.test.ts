import { qrCodeSvg } from '../src/qr.js';
import { Handoff } from '../src/resolvers/Handoff.js';
import { decodeQrSvg } from './support/qr.js';
import { startStack, type TestStack } from './support/stack.js';

const WITH_QR = `mutation { startVerification { sessionId captureUrl qrCodeSvg } }`;

describe('Handoff.qrCodeSvg', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.close());

  it('is an SVG QR code that a camera reads back as exactly the capture URL', async () => {
    const response = await stack.post({ query: WITH_QR }, { authorization: `Bearer ${await stack.token()}` });
    expect(response.body.errors).toBeUndefined();
    const { captureUrl, qrCodeSvg: svg } = response.body.data.startVerification;
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]* viewBox="0 0 \d+ \d+"/);
    expect(decodeQrSvg(svg)).toBe(captureUrl);
  });

  it('is drawn once per handoff, however many aliases select it', async () => {
    // Idempotency-key replays are free of the per-caller limit, and a drawing costs more than the
    // rest of one (~5 ms): drawn per alias, six aliases made each replay ~4 times as dear.
    const resolve = Handoff.qrCodeSvg as unknown as (handoff: { captureUrl: string }) => Promise<string>;
    const handoff = { captureUrl: 'https://idv.example.com/capture?sessionId=one' };
    const first = resolve(handoff);
    expect(resolve(handoff)).toBe(first);
    expect(resolve({ ...handoff })).not.toBe(first);
    expect(decodeQrSvg(await first)).toBe(handoff.captureUrl);

    const query = `mutation { startVerification { captureUrl ${Array.from({ length: 5 }, (_, i) => `q${i}: qrCodeSvg`).join(' ')} } }`;
    const response = await stack.post({ query }, { authorization: `Bearer ${await stack.token('user-qr-aliases')}` });
    expect(response.body.errors).toBeUndefined();
    const { captureUrl, ...drawings } = response.body.data.startVerification;
    expect(new Set(Object.values(drawings)).size).toBe(1);
    expect(decodeQrSvg(drawings.q0)).toBe(captureUrl);
  });

  it('encodes every character of a URL exactly (percent signs, ampersands, long tokens)', async () => {
    const url = `https://idv.example.com/capture?url=${encodeURIComponent(`https://idv.example.com/mobile?authorization=Token%20tr-${'a+/='.repeat(40)}&sessionId=68a72388660070d96275a8c2`)}`;
    expect(decodeQrSvg(await qrCodeSvg(url))).toBe(url);
  });
});
