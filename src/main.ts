/**
 * The entry point. Loading the gateway's modules takes about a second, and as PID 1 (the image's
 * node) a signal with no handler is ignored: a stop sent meanwhile would be lost until the
 * orchestrator's SIGKILL. So signals are collected from the first moment, with no module loaded
 * yet, and handed to the gateway's own handling once it is (process-lifecycle.ts).
 */
import { SHUTDOWN_SIGNALS } from './shutdown-signals.js';

const received: NodeJS.Signals[] = [];
const collect = (signal: NodeJS.Signals) => {
  received.push(signal);
};
for (const signal of SHUTDOWN_SIGNALS) process.on(signal, collect);

const { runGatewayProcess } = await import('./process-lifecycle.js');
await runGatewayProcess({
  received,
  stopCollecting: () => {
    for (const signal of SHUTDOWN_SIGNALS) process.off(signal, collect);
  },
});
