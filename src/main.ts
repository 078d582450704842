import { fileURLToPath } from 'node:url';
import { ConfigError, parseConfig } from './config.js';
import { startGateway } from './gateway.js';
import { createLogger, endLog } from './logger.js';

// How long an exit waits for the last log lines to be written.
const LOG_END_MS = 2000;

async function main(): Promise<void> {
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

  // Graceful shutdown (see RunningGateway.stop); a second signal means "now", for an operator who won't wait.
  let stopping = false;
  const exitAfterLog = (code: number) => endLog(logger, LOG_END_MS).then(() => process.exit(code));
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    stopping = true;
    const started = performance.now();
    logger.info({ signal }, 'shutting down');
    gateway.stop().then(
      (report) => {
        const durationMs = Math.round(performance.now() - started);
        if (report.cutOff > 0) {
          logger.warn({ ...report, durationMs }, 'stopped: the grace period ran out; connections of unfinished requests were closed');
        } else {
          logger.info({ ...report, durationMs }, 'stopped: every request in flight finished');
        }
        return exitAfterLog(0);
      },
      (error: unknown) => {
        logger.error({ err: error instanceof Error ? error.message : String(error) }, 'shutdown failed');
        return exitAfterLog(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
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

await main();
