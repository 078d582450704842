import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { LogLevel } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';

/** The gateway's logger, writing into `lines` (one JSON line per entry) instead of stdout. */
export function capturingLogger(level: LogLevel = 'info'): { lines: string[]; logger: Logger } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { lines, logger: createLogger({ level, pretty: false }, sink) };
}
