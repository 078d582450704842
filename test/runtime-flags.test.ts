import { readFileSync } from 'node:fs';
import { NODE_FLAGS, NODE_OPTIONS } from '../bench/setup.js';

const ROOT = new URL('../', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, ROOT), 'utf8');

// The production image, `npm start` and the benchmark must run Node alike: the benchmark's figures
// are only the product's if its targets get the flags the product ships with.
describe('Node runtime flags', () => {
  const dockerfile = read('Dockerfile');
  const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];

  it('are the same in the Dockerfile CMD, npm start and the benchmark', () => {
    expect(cmd && JSON.parse(cmd)).toEqual(['node', ...NODE_FLAGS, 'dist/main.js']);
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    // `exec`: the shell npm runs the script in hands over to node, so a signal npm passes on reaches it.
    expect(scripts.start).toBe(['exec', 'node', ...NODE_FLAGS, 'dist/main.js'].join(' '));
  });

  it("give the benchmark the image's NODE_OPTIONS", () => {
    expect(dockerfile).toMatch(new RegExp(`^\\s*NODE_OPTIONS=${NODE_OPTIONS}$`, 'm'));
  });
});
