import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { startEmulator, type IdvEmulator } from '../src/emulator/index.js';
import { kernelBacklogCap } from '../src/listen-queue.js';

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
  // 'close', not 'exit': by then stdout and stderr are read to their end.
  const [code] = (await once(started.child, 'close')) as [number | null];
  return { code, stderr: started.stderr(), stdout: started.stdout() };
}

/** A port nothing listens on (just released by the kernel). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `exited`, or, after `seconds`, a rejection with the child killed: a process that hangs must not outlive its test. */
function exitWithin<T>(seconds: number, child: ChildProcess, exited: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`still running after ${seconds} s`));
    }, seconds * 1000);
  });
  return Promise.race([exited, late]).finally(() => clearTimeout(timer));
}

/** Resolves with the connection error, or null when a connection could be made. */
function connectError(url: string): Promise<NodeJS.ErrnoException | null> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(null);
    });
    socket.once('error', (error) => resolve(error));
  });
}

/** The JSON log lines whose message starts with `msg`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function logLines(stdout: string, msg: string): Record<string, any>[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => typeof line.msg === 'string' && line.msg.startsWith(msg));
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
        // Logging is asynchronous in production: the line still comes promptly, without more traffic.
        await waitFor(started.stdout, /"msg":"graphql operation"/, started.child);
        expect(started.stdout()).not.toMatch(/eyJ/);
        expect(started.stdout()).not.toContain('prod-key-0123456789');
      } finally {
        started.child.kill('SIGTERM');
      }
      const exit = await exitOf(started);
      expect(exit.code).toBe(0);
      // ... and what was logged up to the exit is flushed before it.
      expect(exit.stdout).toMatch(/"msg":"shutting down"/);
    });

    it('answers the probes the container and Kubernetes use, and serves metrics on METRICS_PORT', async () => {
      const started = start({ ...productionEnv(emulator), METRICS_PORT: '0' });
      try {
        const [line] = await waitFor(started.stdout, /^\{.*"msg":"gateway ready".*\}$/m, started.child);
        const { url, metricsUrl } = JSON.parse(line) as { url: string; metricsUrl: string };
        const healthz = await fetch(new URL('/healthz', url));
        expect([healthz.status, await healthz.json()]).toEqual([200, { status: 'ok' }]);
        const readyz = await fetch(new URL('/readyz', url));
        expect(readyz.status).toBe(200);
        expect(await readyz.json()).toMatchObject({ status: 'ready', dependencies: { idv: { state: 'up' } } });
        const metrics = await fetch(metricsUrl);
        expect(metrics.status).toBe(200);
        expect(await metrics.text()).toContain('idv_gateway_http_requests_total{route="readyz",status="200"} 1');
        expect((await fetch(new URL('/metrics', url))).status).toBe(404);
      } finally {
        started.child.kill('SIGTERM');
      }
      expect((await exitOf(started)).code).toBe(0);
    });

    it('warns at start when the kernel queues fewer new connections than HTTP_LISTEN_BACKLOG asks for', async () => {
      const started = start({ ...productionEnv(emulator), HTTP_LISTEN_BACKLOG: '65535' });
      try {
        await waitFor(started.stdout, /^\{.*"msg":"gateway ready".*\}$/m, started.child);
      } finally {
        started.child.kill('SIGTERM');
      }
      const { code, stdout } = await exitOf(started);
      expect(code).toBe(0);
      const warnings = logLines(stdout, 'the kernel queues at most');
      // Linux reports its cap (net.core.somaxconn, at most 4096 by default); elsewhere nothing is known.
      const cap = kernelBacklogCap();
      if (cap !== null && cap < 65535) {
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatchObject({ level: 40, listenBacklog: 65535, somaxconn: cap });
      } else expect(warnings).toHaveLength(0);
    });

    describe('graceful shutdown', () => {
      const secret = 'production-secret-with-more-than-32-bytes';
      const bearer = (user: string) =>
        new SignJWT({ sub: user }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1m').sign(new TextEncoder().encode(secret));

      async function startReady(env: Record<string, string> = {}) {
        const started = start({ ...productionEnv(emulator), AUTH_JWT_SECRET: secret, ...env });
        const [line] = await waitFor(started.stdout, /^\{.*"msg":"gateway ready".*\}$/m, started.child);
        return { started, url: (JSON.parse(line) as { url: string }).url };
      }

      async function untilDeviceCalls(count: number) {
        for (let i = 0; i < 500 && emulator.callCount('device') < count; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
        expect(emulator.callCount('device')).toBe(count);
      }

      beforeEach(() => {
        emulator.clearFaults();
        emulator.resetRecords();
      });

      it('on SIGTERM, finishes 20 slow mutations in flight with handoffs, refuses new connections, and exits 0', async () => {
        emulator.inject('device', { kind: 'delay', ms: 1500 }, 20);
        const { started, url } = await startReady();
        const sessionsBefore = emulator.sessions.size;
        const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => bearer(`drain-user-${i}`)));
        const answers = tokens.map((token) => mutate(url, token));
        await untilDeviceCalls(20);

        started.child.kill('SIGTERM');
        const [draining] = await waitFor(started.stdout, /^\{.*"msg":"draining: .*\}$/m, started.child);
        expect(JSON.parse(draining)).toMatchObject({ inFlight: 20, graceMs: 10_000 });
        expect((await connectError(url))?.code).toBe('ECONNREFUSED');

        const results = await Promise.all(answers);
        for (const result of results) {
          expect(result.errors).toBeUndefined();
          expect(result.data?.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
          expect(result.data?.startVerification.mobileUrl).toContain('/mobile?authorization=');
        }
        expect(emulator.sessions.size - sessionsBefore).toBe(20);
        const { code, stdout } = await exitOf(started);
        expect(code).toBe(0);
        // Within the grace period: the gateway says no request had to be cut off.
        expect(logLines(stdout, 'stopped')).toEqual([expect.objectContaining({ msg: 'stopped: every request in flight finished', inFlight: 20, cutOff: 0 })]);
      });

      it('closes what is left once SHUTDOWN_GRACE_MS has run out, and still exits 0', async () => {
        emulator.inject('device', { kind: 'hang' });
        const { started, url } = await startReady({ SHUTDOWN_GRACE_MS: '200' });
        const stuck = mutate(url, await bearer('stuck-user')).then(
          () => 'answered',
          () => 'connection closed',
        );
        await untilDeviceCalls(1);
        started.child.kill('SIGTERM');
        const { code, stdout } = await exitOf(started);
        expect(code).toBe(0);
        expect(logLines(stdout, 'stopped')).toEqual([expect.objectContaining({ inFlight: 1, cutOff: 1, graceMs: 200 })]);
        expect(await stuck).toBe('connection closed');
      });

      it('exits on SIGTERM when its log reader has gone, and says on stderr that log lines are dropped', async () => {
        const { started } = await startReady();
        // The reader of the gateway's stdout goes away (a log shipper that died, `npm start | cat` stopped by Ctrl-C).
        started.child.stdout.destroy();
        started.child.kill('SIGTERM');
        expect(await exitWithin(10, started.child, exitOf(started))).toMatchObject({ code: 0 });
        expect(started.stderr()).toContain('standard output failed (EPIPE: the log reader has gone): log lines are dropped from now on');
      });

      it('keeps serving, and still exits on SIGTERM, when stdout cannot be written (a full disk)', async () => {
        const port = await freePort();
        const full = openSync('/dev/full', 'w');
        const child = spawn(process.execPath, [MAIN], {
          env: { PATH: process.env.PATH ?? '', ...productionEnv(emulator), AUTH_JWT_SECRET: secret, PORT: String(port) },
          cwd: ROOT,
          stdio: ['ignore', full, 'pipe'],
        });
        closeSync(full);
        let stderr = '';
        child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        const closed = once(child, 'close') as Promise<[number | null]>;
        try {
          await waitFor(() => stderr, /standard output failed \(ENOSPC: a write failed\): log lines are dropped from now on/, child as ChildProcessWithoutNullStreams);
          let answer;
          for (let i = 0; i < 100 && !answer; i += 1) {
            answer = await mutate(`http://127.0.0.1:${port}/graphql`, await bearer('full-disk-user')).catch(() => new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 50)));
          }
          expect(answer?.data?.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
          child.kill('SIGTERM');
          const [code] = await exitWithin(10, child, closed);
          expect(code).toBe(0);
        } finally {
          if (child.exitCode === null) child.kill('SIGKILL');
        }
      });

      it('stops once started when the signal came while it was starting', async () => {
        // Redis at a closed port: start-up waits for it (2 s), then goes on degraded.
        const started = start({ ...productionEnv(emulator), AUTH_JWT_SECRET: secret, REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
        await waitFor(started.stdout, /"msg":"starting"/, started.child);
        started.child.kill('SIGTERM');
        const { code, stdout } = await exitOf(started);
        expect(code).toBe(0);
        const messages = stdout
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => (JSON.parse(line) as { msg: string }).msg)
          .filter((msg) => !msg.startsWith('Redis'));
        expect(messages).toEqual([
          'starting',
          'signal received while starting: stopping once started',
          'gateway ready',
          'shutting down',
          'draining: no new connections; waiting for requests in flight',
          'stopped: every request in flight finished',
        ]);
      });

      it('drains on SIGHUP, and takes the same signal twice within a second as one (Ctrl-C reaches npm and node)', async () => {
        emulator.inject('device', { kind: 'delay', ms: 1500 }, 1);
        const { started, url } = await startReady();
        const answer = mutate(url, await bearer('sighup-user'));
        await untilDeviceCalls(1);
        started.child.kill('SIGHUP');
        // Sent apart, while the drain waits on the mutation: two kills at once would reach the
        // process as one pending signal.
        await waitFor(started.stdout, /"msg":"draining: /, started.child);
        started.child.kill('SIGHUP');
        const { code, stdout } = await exitOf(started);
        expect(code).toBe(0);
        expect((await answer).data?.startVerification.sessionId).toMatch(/^[0-9a-f]{24}$/);
        expect(logLines(stdout, 'shutting down')).toEqual([expect.objectContaining({ signal: 'SIGHUP' })]);
        expect(logLines(stdout, 'second signal')).toEqual([]);
        expect(logLines(stdout, 'stopped')).toEqual([expect.objectContaining({ inFlight: 1, cutOff: 0 })]);
      });

      it('exits on a second signal when its log reader has gone', async () => {
        const { started } = await startReady();
        started.child.stdout.destroy();
        started.child.kill('SIGTERM');
        started.child.kill('SIGINT');
        // Either exit may come first (the drain's, 0, or the second signal's, 1): what this is
        // about is that one comes, where pino's flush at exit used to retry EPIPE forever.
        expect([0, 1]).toContain((await exitWithin(10, started.child, exitOf(started))).code);
      });

      it('exits at once on a second signal', async () => {
        emulator.inject('device', { kind: 'hang' });
        const { started, url } = await startReady({ SHUTDOWN_GRACE_MS: '600000' });
        const stuck = mutate(url, await bearer('stuck-user')).catch(() => null);
        await untilDeviceCalls(1);
        started.child.kill('SIGTERM');
        await waitFor(started.stdout, /"msg":"draining: /, started.child);
        started.child.kill('SIGINT');
        const { code, stdout } = await exitOf(started);
        expect(code).toBe(1);
        expect(logLines(stdout, 'second signal')).toHaveLength(1);
        await stuck;
      });
    });
  });
});

function productionEnv(emulator: IdvEmulator): Record<string, string> {
  return {
    NODE_ENV: 'production',
    PORT: '0',
    HOST: '127.0.0.1',
    IDV_BASE_URL: emulator.url,
    IDV_API_KEY: 'prod-key-0123456789',
    IDV_API_KEY_SCHEME: 'ApiKey',
    IDV_WORKFLOWS: 'kyc=wf-1',
    AUTH_JWT_SECRET: 'production-secret-with-more-than-32-bytes',
  };
}
