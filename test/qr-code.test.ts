import { qrCodeSvg } from '../src/qr.js';
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

  it('encodes every character of a URL exactly (percent signs, ampersands, long tokens)', async () => {
    const url = `https://idv.example.com/capture?url=${encodeURIComponent(`https://idv.example.com/mobile?authorization=Token%20tr-${'a+/='.repeat(40)}&sessionId=68a72388660070d96275a8c2`)}`;
    expect(decodeQrSvg(await qrCodeSvg(url))).toBe(url);
  });
});
