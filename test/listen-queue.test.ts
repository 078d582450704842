import { backlogWarning, kernelBacklogCap } from '../src/listen-queue.js';

describe('the kernel cap on the listen backlog', () => {
  it('reads net.core.somaxconn as a positive integer', () => {
    expect(kernelBacklogCap(() => '4096\n')).toBe(4096);
  });

  it('knows nothing when the file is missing or holds something else', () => {
    expect(
      kernelBacklogCap(() => {
        throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      }),
    ).toBeNull();
    expect(kernelBacklogCap(() => '')).toBeNull();
    expect(kernelBacklogCap(() => 'many')).toBeNull();
    expect(kernelBacklogCap(() => '-1')).toBeNull();
  });

  it('warns only when the kernel queues fewer connections than asked for, naming both figures', () => {
    expect(backlogWarning(4096, 4096)).toBeNull();
    expect(backlogWarning(4096, 65535)).toBeNull();
    expect(backlogWarning(4096, null)).toBeNull();
    const warning = backlogWarning(8192, 4096);
    expect(warning).toContain('at most 4096');
    expect(warning).toContain('HTTP_LISTEN_BACKLOG=8192');
    expect(warning).toContain('net.core.somaxconn');
  });
});
