/**
 * The gateway as a process (main.ts loads it): configuration, logger, start, the signals that stop
 * it, and its exit.
 */
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ConfigError, parseConfig } from './config.js';
import { startGateway, type RunningGateway } from './gateway.js';
import { createLogger, dropLog, endLog } from './logger.js';
import { SHUTDOWN_SIGNALS } from './shutdown-signals.js';

// How long an exit waits for the last log lines to be written.
const LOG_END_MS = 2000;
// How long the exit on a second signal waits: enough for a write in flight to fail (a stdout
// whose reader has gone), so that pino's synchronous flush at exit does not retry it forever.
const SECOND_SIGNAL_LOG_END_MS = 200;
// The same signal again within this long is one delivered twice (see ShutdownSignals).
const REPEAT_WINDOW_MS = 1000;

/** Signals received before this module was loaded (main.ts), and how to stop collecting them. */
export interface EarlySignals {
  readonly received: readonly NodeJS.Signals[];
  stopCollecting(): void;
}

export async function runGatewayProcess(early: EarlySignals): Promise<void> {
  let config;
  try {
    config = parseConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`idv-gateway: configuration error: ${error.message}`);
    process.exitCode = 1;
    return;
  }
  const logger = createLogger({ level: config.logLevel, pretty: !config.production && process.stdout.isTTY });

  // Handled from here on (and collected by main.ts before), not only once the gateway is up: one
  // received while starting stops the gateway as soon as it is up.
  logger.info({ pid: process.pid, node: process.version }, 'starting');
  const signals = new ShutdownSignals(logger);
  signals.listen(early);

  let gateway;
  try {
    // `npm run build` puts the demo page beside this file, in dist/demo.
    gateway = await startGateway(config, logger, { demoDir: fileURLToPath(new URL('./demo/', import.meta.url)) });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    console.error(`idv-gateway: could not start: ${reason}`);
    process.exitCode = 1;
    return;
  }
  logger.info(
    { url: gateway.url, metricsUrl: gateway.metricsUrl, emulator: gateway.emulator !== null, idvFlow: config.idv.flow },
    'gateway ready',
  );
  if (!config.production) printBanner(gateway.url, gateway.emulator?.url ?? null, gateway.devToken, gateway.demoUrl);
  signals.started(gateway);
}

type Stoppable = Pick<RunningGateway, 'stop'>;

/**
 * Graceful shutdown (see RunningGateway.stop) on SIGTERM, SIGINT or SIGHUP (a closed terminal or
 * ssh session); a second signal means "now", for an operator who won't wait. The same signal
 * again within a second is one request delivered twice, not a second: Ctrl-C in a terminal
 * reaches both `npm start` and the gateway, and npm passes it on.
 */
class ShutdownSignals {
  #first: { signal: NodeJS.Signals; at: number } | null = null;
  #gateway: Stoppable | null = null;

  constructor(private readonly logger: Logger) {}

  /** Takes over from main.ts's collector, then handles what it collected, in order. */
  listen(early: EarlySignals): void {
    for (const signal of SHUTDOWN_SIGNALS) process.on(signal, (received: NodeJS.Signals) => this.#received(received));
    early.stopCollecting();
    for (const signal of early.received) this.#received(signal);
  }

  /** The gateway is up: a signal received while it started stops it now. */
  started(gateway: Stoppable): void {
    this.#gateway = gateway;
    if (this.#first) this.#stop(gateway);
  }

  #received(signal: NodeJS.Signals): void {
    const { logger } = this;
    if (this.#first) {
      if (signal === this.#first.signal && performance.now() - this.#first.at < REPEAT_WINDOW_MS) return;
      logger.warn({ signal }, 'second signal, exiting now');
      // "Now": what the log stream has not written by then is dropped, so that pino's synchronous
      // flush at exit cannot wait on a reader that has stopped reading.
      void endLog(logger, SECOND_SIGNAL_LOG_END_MS).then(() => {
        dropLog(logger);
        process.exit(1);
      });
      return;
    }
    this.#first = { signal, at: performance.now() };
    if (this.#gateway) this.#stop(this.#gateway);
    else logger.info({ signal }, 'signal received while starting: stopping once started');
  }

  #stop(gateway: Stoppable): void {
    const { logger } = this;
    const started = performance.now();
    logger.info({ signal: this.#first?.signal }, 'shutting down');
    gateway.stop().then(
      (report) => {
        const durationMs = Math.round(performance.now() - started);
        if (report.cutOff > 0) {
          logger.warn({ ...report, durationMs }, 'stopped: the grace period ran out; connections of unfinished requests were closed');
        } else {
          logger.info({ ...report, durationMs }, 'stopped: every request in flight finished');
        }
        return this.#exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error instanceof Error ? error.message : String(error) }, 'shutdown failed');
        return this.#exit(1);
      },
    );
  }

  #exit(code: number): Promise<never> {
    return endLog(this.logger, LOG_END_MS).then(() => process.exit(code));
  }
}

function printBanner(url: string, emulatorUrl: string | null, devToken: string | null, demoUrl: string | null): void {
  const lines = [
    '',
    `  idv-gateway is listening: ${url}`,
    ...(demoUrl ? [`  Demo page ("Start verification" with Apollo Client): ${demoUrl}`] : []),
    emulatorUrl
      ? `  IDV platform: the embedded emulator at ${emulatorUrl} (set IDV_BASE_URL to use a real one)`
      : '  IDV platform: as configured by IDV_BASE_URL',
  ];
  if (devToken) {
    lines.push(
      '',
      '  Development bearer token (user "dev-user", valid 12 hours; signed with a secret made at start-up unless AUTH_JWT_SECRET is set):',
      '',
      `  ${devToken}`,
      '',
      '  Try it:',
      `  curl -s ${url} -H 'content-type: application/json' -H 'authorization: Bearer ${devToken}' \\`,
      `    -d '{"query":"mutation { startVerification { sessionId captureUrl mobileUrl expiresAt workflow } }"}'`,
    );
  }
  lines.push('');
  console.log(lines.join('\n'));
}
