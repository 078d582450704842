import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { IdvEmulator } from '../../src/emulator/index.js';
import { TEST_API_KEY, TEST_JWT_SECRET, WORKFLOW_IDS } from './stack.js';

export interface Memory {
  rss: number;
  heapUsed: number;
}

export interface MeasuredGateway {
  readonly child: ChildProcess;
  readonly url: string;
  /** The process's memory after a full collection. */
  memory(): Promise<Memory>;
  stop(): Promise<void>;
}

/**
 * The built gateway in production mode in its own process (gateway-process.js, built by the
 * global setup), so that the memory measured is the gateway's alone; `env` adds to or overrides
 * its configuration.
 */
export async function startMeasuredGateway(emulator: IdvEmulator, env: Record<string, string> = {}): Promise<MeasuredGateway> {
  const child = fork(fileURLToPath(new URL('./gateway-process.js', import.meta.url)), {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      PORT: '0',
      HOST: '127.0.0.1',
      IDV_BASE_URL: emulator.url,
      IDV_API_KEY: TEST_API_KEY,
      IDV_WORKFLOWS: `kyc=${WORKFLOW_IDS.kyc}`,
      AUTH_JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: 'error',
      ...env,
    },
  });
  const [ready] = (await once(child, 'message')) as [{ url: string }];
  return {
    child,
    url: ready.url,
    async memory() {
      child.send({ type: 'memory' });
      const [answer] = (await once(child, 'message')) as [Memory];
      return answer;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ type: 'stop' });
      await once(child, 'exit');
    },
  };
}
