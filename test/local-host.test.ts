import { isLoopbackHost } from '../src/local-host.js';

// The Host names the development token is handed to (src/local-host.ts).
describe('isLoopbackHost', () => {
  it.each(['localhost', 'LOCALHOST:4000', 'app.localhost:4000', '127.0.0.1', '127.1.2.3:80', '[::1]', '[::1]:4000'])('takes %j', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });

  it.each([undefined, '', 'evil.example', 'localhost.evil.example', '127.0.0.1.evil.example', '192.168.1.5:4000', '[::1]evil.example', '[::2]:4000', 'a@localhost', 'localhost:4000:1', 'local host'])(
    'refuses %j',
    (host) => {
      expect(isLoopbackHost(host)).toBe(false);
    },
  );
});
