import { createHash } from 'node:crypto';
import { writeSync } from 'node:fs';
import { pino, type Logger, type LoggerOptions } from 'pino';
import type { LogLevel } from './config.js';

/**
 * Keys that could carry a credential if some object ends up in a log line: the caller's bearer
 * token, our API key, the ephemeral token and the handoff URLs that embed it. Censored at the top
 * of a line and one level down, and in request headers. Defence in depth: the code logs none of
 * these on purpose.
 */
const SECRET_KEYS = ['authorization', 'apiKey', 'token', 'mobileUrl', 'captureUrl'] as const;
const CENSOR = '[redacted]';
// No wildcard paths ("*.token") here: pino runs a wildcard redactor on every value of a line that
// has no path of its own, strings and numbers included, and @pinojs/redact parses its paths again
// on each call: 7-10 µs and ~17 KB of garbage per line. One level down is censorNestedSecrets' job.
const REDACTED_PATHS = [...SECRET_KEYS, 'headers.authorization', 'req.headers.authorization'];

/**
 * The line with every credential one level down censored (what the paths "*.token" etc. did), on a
 * copy: the caller's objects stay as they were. Lines without one, nearly all, are returned as
 * they are. Copies keep their prototype and every own property, so an Error with a token on it is
 * still serialised as an error, message and stack included.
 *
 * What it does not see, unlike pino's wildcard paths: a child logger's bindings and printf-style
 * arguments (`%j`), both written as given. The gateway binds only constant component names and
 * logs no printf-style objects; keep it so.
 */
export function censorNestedSecrets(line: Record<string, unknown>): Record<string, unknown> {
  let censoredLine: Record<string, unknown> | undefined;
  for (const key of Object.keys(line)) {
    const value = line[key];
    if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
    if (!SECRET_KEYS.some((secret) => Object.hasOwn(value, secret))) continue;
    censoredLine ??= { ...line };
    censoredLine[key] = withSecretsCensored(value);
  }
  return censoredLine ?? line;
}

function withSecretsCensored(value: object): object {
  const properties: PropertyDescriptorMap = Object.getOwnPropertyDescriptors(value);
  for (const secret of SECRET_KEYS) {
    const property = properties[secret];
    if (property) properties[secret] = { value: CENSOR, enumerable: property.enumerable, writable: true, configurable: true };
  }
  // On Node 24 an error's stack is an accessor that answers only for the error itself.
  if (value instanceof Error) properties.stack = { value: value.stack, enumerable: false, writable: true, configurable: true };
  return Object.create(Object.getPrototypeOf(value) as object | null, properties) as object;
}

export function createLogger(options: { level: LogLevel; pretty: boolean }, destination?: pino.DestinationStream): Logger {
  const config: LoggerOptions = {
    level: options.level,
    base: { service: 'idv-gateway' },
    redact: { paths: REDACTED_PATHS, censor: CENSOR },
    formatters: { log: censorNestedSecrets },
  };
  if (destination) return pino(config, destination);
  // pino-pretty is a development dependency: an install without it (`npm ci --omit=dev`) run in
  // a terminal outside production logs JSON instead of failing to start.
  if (options.pretty && prettyAvailable()) {
    return pino({ ...config, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } });
  }
  // Spelled out, though it is pino's default for stdout: asynchronous, so a slow log reader never
  // stalls requests. Lines logged while a write is in flight go out together in the next one,
  // nothing is held back when idle (no minLength), and pino flushes synchronously when the process
  // exits, a crash included; only a SIGKILL can lose lines.
  // Node's process.stdout, once created, puts fd 1 in non-blocking mode when it is a pipe: a write
  // to a full pipe then fails with EAGAIN (which sonic-boom retries) instead of blocking a
  // thread-pool thread that process.exit would wait on (the second signal's exit: dropLog). A
  // dependency happens to create it today; created here on purpose.
  void process.stdout.fd;
  const stdout = pino.destination({ dest: 1, sync: false });
  stdout.on('error', (error: NodeJS.ErrnoException) => silence(stdout, error));
  return pino(config, stdout);
}

function prettyAvailable(): boolean {
  try {
    import.meta.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

type LogStream = NodeJS.EventEmitter & { end?: () => void; write?: unknown; flushSync?: unknown; destroy?: unknown };

function streamOf(logger: Logger): LogStream | undefined {
  return (logger as unknown as Record<symbol, LogStream | undefined>)[pino.symbols.streamSym];
}

/** Log streams that failed to write and were turned into no-ops. */
const silenced = new WeakSet<object>();

/**
 * A write to stdout failed for good: the log reader has gone (EPIPE), the disk a redirect writes
 * to is full (ENOSPC), the descriptor is broken (EIO, EBADF). pino itself handles only EPIPE so
 * (and re-emits the rest, an uncaught exception); sonic-boom's synchronous flush at exit then
 * retries the failed write every 100 ms, forever, on the main thread: the gateway stopped
 * answering and no signal could end it. Serving goes on, without logs, and stderr says so once.
 */
function silence(stream: LogStream, error: NodeJS.ErrnoException): void {
  if (silenced.has(stream)) return;
  turnOff(stream);
  const why = error.code === 'EPIPE' ? 'the log reader has gone' : 'a write failed';
  reportOnStderr(`standard output failed (${error.code ?? error.message}: ${why}): log lines are dropped from now on`);
}

/**
 * Writes out the lines the logger still holds and ends its stream, waiting at most `timeoutMs`:
 * call it last before process.exit. pino's exit hook flushes the stream synchronously, and
 * sonic-boom 4's synchronous flush retries a write to a closed pipe (EPIPE: the log reader has
 * gone, as when Ctrl-C stops `npm start | cat`) every 100 ms, forever, on the main thread: such a
 * gateway never exited, and a second signal could not reach it. Ended here, asynchronously, the
 * EPIPE reaches the stream's listener (see silence) and the exit hook has nothing left to do.
 * A reader that is alive but not reading (the pipe full) still holds the exit, as before.
 */
export function endLog(logger: Logger, timeoutMs: number): Promise<void> {
  const stream = streamOf(logger);
  if (typeof stream?.end !== 'function' || silenced.has(stream)) return Promise.resolve();
  const end = stream.end.bind(stream);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    stream.once('close', done);
    stream.once('error', done);
    end();
  });
}

/** The stream writes nothing more, now or at exit. */
function turnOff(stream: LogStream): void {
  silenced.add(stream);
  const noop = () => {};
  stream.write = noop;
  stream.flushSync = noop;
  stream.end = noop;
  stream.destroy = noop;
}

/**
 * Drops what the logger has not written yet, for an exit that must not wait: pino's synchronous
 * flush at exit retries a full pipe (a reader that stopped reading) for as long as it stays full.
 */
export function dropLog(logger: Logger): void {
  const stream = streamOf(logger);
  if (stream && typeof stream.flushSync === 'function') turnOff(stream);
}

function reportOnStderr(message: string): void {
  try {
    writeSync(2, `idv-gateway: ${message}\n`);
  } catch {
    // Standard error is gone too: nothing is left to tell.
  }
}

/**
 * A stable pseudonym for a user id, so log lines of one user can be correlated without the log
 * holding the id itself (LOG_USER_IDS=true logs it in clear). Not anonymisation: a guessable id
 * can be confirmed by hashing it.
 */
export function pseudonymize(userId: string): string {
  return `u_${createHash('sha256').update(`idv-gateway:${userId}`).digest('base64url').slice(0, 16)}`;
}
