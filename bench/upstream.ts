/**
 * The benchmark's upstream: the project's IDV emulator in its own process, with a fixed latency
 * per call and no per-call records (record: false), so it stays cheap and flat under load.
 * Prints one JSON line {"ready": "<url>"} on stdout once it listens.
 */
import { startEmulator } from '../src/emulator/index.js';

const emulator = await startEmulator({
  apiKey: required('BENCH_API_KEY'),
  workflowIds: [required('BENCH_WORKFLOW_ID')],
  latencyMs: Number(process.env.BENCH_LATENCY_MS ?? 0),
  host: '127.0.0.1',
  record: false,
});
process.stdout.write(`${JSON.stringify({ ready: emulator.url })}\n`);
process.on('SIGTERM', () => void emulator.close().then(() => process.exit(0)));

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}
