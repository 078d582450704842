import { createHash } from 'node:crypto';
import { pino, type Logger, type LoggerOptions } from 'pino';
import type { LogLevel } from './config.js';
import { currentRequestScope } from './request-scope.js';

/**
 * Paths that could carry a credential if some object ends up in a log line: the caller's bearer
 * token, our API key, the ephemeral token and the handoff URLs that embed it. Defence in depth:
 * the code logs none of these on purpose.
 */
const REDACTED_PATHS = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  '*.authorization',
  'apiKey',
  '*.apiKey',
  'token',
  '*.token',
  'mobileUrl',
  'captureUrl',
  '*.mobileUrl',
  '*.captureUrl',
];

export function createLogger(options: { level: LogLevel; pretty: boolean }, destination?: pino.DestinationStream): Logger {
  const config: LoggerOptions = {
    level: options.level,
    base: { service: 'idv-gateway' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    // Every line written while a request is handled carries its id, whichever module writes it.
    mixin: () => {
      const scope = currentRequestScope();
      return scope ? { requestId: scope.requestId } : {};
    },
  };
  if (destination) return pino(config, destination);
  if (options.pretty) {
    return pino({ ...config, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } });
  }
  // Spelled out, though it is pino's default for stdout: asynchronous, so a slow log reader never
  // stalls requests. Lines logged while a write is in flight go out together in the next one,
  // nothing is held back when idle (no minLength), and pino flushes synchronously when the process
  // exits, a crash included; only a SIGKILL can lose lines.
  return pino(config, pino.destination({ dest: 1, sync: false }));
}

/**
 * A stable pseudonym for a user id, so log lines of one user can be correlated without the log
 * holding the id itself (LOG_USER_IDS=true logs it in clear). Not anonymisation: a guessable id
 * can be confirmed by hashing it.
 */
export function pseudonymize(userId: string): string {
  return `u_${createHash('sha256').update(`idv-gateway:${userId}`).digest('base64url').slice(0, 16)}`;
}
