// The built gateway in a process of its own, so that a test can measure its memory alone.
// Configured by the environment like `node dist/main.js`; answers IPC messages from the test.
import { parseConfig } from '../../dist/config.js';
import { startGateway } from '../../dist/gateway.js';
import { createLogger } from '../../dist/logger.js';

const config = parseConfig(process.env);
const gateway = await startGateway(config, createLogger({ level: config.logLevel, pretty: false }));
process.send({ type: 'ready', url: gateway.url });

process.on('message', async (message) => {
  if (message.type === 'memory') {
    // Started with --expose-gc: figures after a full collection.
    globalThis.gc();
    const { rss, heapUsed } = process.memoryUsage();
    process.send({ type: 'memory', rss, heapUsed });
  } else if (message.type === 'stop') {
    await gateway.stop();
    process.exit(0);
  }
});
