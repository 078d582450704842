import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The /demo page. `npm run build` writes it to dist/demo, which the gateway serves in
// development only.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/demo/',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/demo', import.meta.url)),
    emptyOutDir: true,
  },
});
