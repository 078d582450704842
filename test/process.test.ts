import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { startEmulator, type IdvEmulator } from '../src/emulator/index.js';

// The built server (compiled by test/global-setup.js), started the way `npm start` and a container start it.
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = `${ROOT}dist/main.js`;
const MUTATION = 'mutation { startVerification { sessionId captureUrl mobileUrl expiresAt workflow } }';

interface Started {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
}

function start(env: Record<string, string>): Started {
  // A clean environment: nothing from the developer's shell leaks into the configuration.
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH ?? '', ...env }, cwd: ROOT });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return { child, stdout: () => out, stderr: () => err };
}

async function waitFor(read: () => string, pattern: RegExp, child: ChildProcessWithoutNullStreams): Promise<RegExpExecArray> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const match = pattern.exec(read());
    if (match) return match;
    if (child.exitCode !== null) throw new Error(`process exited early (${child.exitCode})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${pattern}`);
}

async function exitOf(started: Started): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const [code] = (await once(started.child, 'exit')) as [number | null];
  return { code, stderr: started.stderr(), stdout: started.stdout() };
}

async function mutate(url: string, token: string) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: MUTATION }),
  });
  return (await response.json()) as { data?: { startVerification: { sessionId: string; mobileUrl: string } }; errors?: unknown[] };
}

describe('the gateway process', () => {
  it('starts with no configuration on the embedded emulator, and its printed token works', async () => {
    const started = start({ PORT: '0' });
    try {
      const [, url] = await waitFor(started.stdout, /listening: (http:\/\/\S+)/, started.child);
      const [, token] = await waitFor(started.stdout, /\n {2}(eyJ[\w-]+\.[\w-]+\.[\w-]+)\n/, started.child);
      expect(started.stdout()).toContain('the embedded emulator');
      const result = await mutate(url ?? '', token ?? '');
      expect(result.errors).toBeUndefined();
      expect(result.data?.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
      expect(result.data?.startVerification.mobileUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mobile\?authorization=Token%20tr-/);
    } finally {
      started.child.kill('SIGTERM');
    }
    const { code } = await exitOf(started);
    expect(code).toBe(0);
  });

  it.each([
    [{ PORT: 'abc' }, 'idv-gateway: configuration error: PORT must be a whole number from 0 to 65535 (got "abc")'],
    [{ NODE_ENV: 'production' }, 'idv-gateway: configuration error: IDV_BASE_URL is required when NODE_ENV=production (the embedded emulator is for development only)'],
    [{ AUTH_JWT_SECRET: 'too-short' }, 'idv-gateway: configuration error: AUTH_JWT_SECRET must be at least 32 bytes long for HS256'],
  ])('refuses to start on %j with one clear line and no stack trace', async (env, line) => {
    const { code, stderr, stdout } = await exitOf(start(env));
    expect(code).toBe(1);
    expect(stderr).toBe(`${line}\n`);
    expect(stdout).toBe('');
  });

  describe('in production, against a platform', () => {
    let emulator: IdvEmulator;
    beforeAll(async () => {
      emulator = await startEmulator({ apiKey: 'prod-key-0123456789', apiKeyScheme: 'ApiKey', workflowIds: ['wf-1'] });
    });
    afterAll(() => emulator.close());

    it('serves handoffs, prints no token and logs JSON', async () => {
      const secret = 'production-secret-with-more-than-32-bytes';
      const started = start({
        NODE_ENV: 'production',
        PORT: '0',
        IDV_BASE_URL: emulator.url,
        IDV_API_KEY: 'prod-key-0123456789',
        IDV_API_KEY_SCHEME: 'ApiKey',
        IDV_WORKFLOWS: 'kyc=wf-1',
        AUTH_JWT_SECRET: secret,
      });
      try {
        const [line] = await waitFor(started.stdout, /^\{.*"msg":"gateway ready".*\}$/m, started.child);
        const { url } = JSON.parse(line) as { url: string };
        const token = await new SignJWT({ sub: 'prod-user' })
          .setProtectedHeader({ alg: 'HS256' })
          .setExpirationTime('1m')
          .sign(new TextEncoder().encode(secret));
        const result = await mutate(url, token);
        expect(result.data?.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
        expect(emulator.requests[0]?.headers.authorization).toBe('ApiKey prod-key-0123456789');
        expect(started.stdout()).not.toMatch(/eyJ/);
        expect(started.stdout()).not.toContain('prod-key-0123456789');
      } finally {
        started.child.kill('SIGTERM');
      }
      expect((await exitOf(started)).code).toBe(0);
    });
  });
});
