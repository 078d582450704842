import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { rawRequest } from './support/raw-http.js';
import { startStack, type TestStack } from './support/stack.js';

// Who gets the /demo page: development only, since it hands out the development token.
describe('serving /demo', () => {
  let demoDir: string;
  beforeAll(async () => {
    demoDir = await mkdtemp(`${tmpdir()}/idv-demo-serving-`);
    await writeFile(`${demoDir}/index.html`, '<!doctype html><title>demo</title>');
  });
  afterAll(() => rm(demoDir, { recursive: true, force: true }));

  describe('in development', () => {
    let stack: TestStack;
    beforeAll(async () => {
      stack = await startStack({}, {}, { demoDir });
    });
    afterAll(() => stack.close());

    it('serves the page with a strict content security policy', async () => {
      const response = await fetch(new URL('/demo/', stack.url));
      expect(response.status).toBe(200);
      expect(await response.text()).toContain('<title>demo</title>');
      expect(response.headers.get('content-security-policy')).toMatch(/^default-src 'self'; img-src 'self' data:;/);
      expect(stack.gateway.demoUrl).toBe(new URL('/demo/', stack.url).href);
    });

    it('hands the page a development token that the gateway accepts, never cached', async () => {
      const response = await fetch(new URL('/demo/config.json', stack.url));
      expect(response.headers.get('cache-control')).toBe('no-store');
      const { token } = (await response.json()) as { token: string };
      expect(token).toBe(stack.gateway.devToken);
      const result = await stack.startVerification({ token });
      expect(result.body.data.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
      expect(stack.emulator.sessions.get(result.body.data.startVerification.sessionId)?.metadata).toEqual({ externalUserId: 'dev-user' });
    });

    // A page elsewhere that had its own name resolve here (DNS rebinding), or a device on the
    // network, gets no token: only a browser on this machine, by a loopback name.
    it.each([
      ['rebind.evil.example:4000', null],
      ['192.0.2.10:4000', null],
      ['localhost:4000', 'token'],
      ['127.0.0.1', 'token'],
    ])('hands the token to Host %s: %s', async (host, expected) => {
      const response = await rawRequest(new URL('/demo/config.json', stack.url).href, { method: 'GET', headers: { host } });
      expect(response.body).toEqual({ token: expected === null ? null : stack.gateway.devToken });
    });
  });

  it('says how to build the page when it is not built', async () => {
    const stack = await startStack({}, {}, { demoDir: `${demoDir}/missing` });
    try {
      const response = await fetch(new URL('/demo/', stack.url));
      expect(response.status).toBe(404);
      expect(await response.text()).toContain('npm run build');
    } finally {
      await stack.close();
    }
  });

  it('is not served in production, and no token is handed out', async () => {
    const stack = await startStack({ NODE_ENV: 'production' }, {}, { demoDir });
    try {
      expect(stack.gateway.demoUrl).toBeNull();
      for (const path of ['/demo/', '/demo/config.json']) {
        const response = await fetch(new URL(path, stack.url));
        expect(response.status).toBe(404);
        expect(await response.text()).not.toMatch(/eyJ|demo<\/title>/);
      }
    } finally {
      await stack.close();
    }
  });
});
