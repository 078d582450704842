import http from 'node:http';
import net from 'node:net';

export interface RawResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any;
}

/**
 * An HTTP request with nothing added: no default content type, headers exactly as given. As a flat
 * list of names and values (rawHeaders' shape), a name may repeat and keeps its case; Host must
 * then be in it.
 */
export function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string> | readonly string[]; body?: string | Buffer } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: options.method ?? 'POST', headers: options.headers ?? {} }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text, body });
      });
    });
    request.on('error', reject);
    request.end(options.body);
  });
}

/** Writes raw bytes (e.g. headers in odd encodings) and returns the response's status line. */
export function rawBytes(url: string, bytes: Buffer): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.end(bytes));
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('close', () => resolve(received.split('\r\n')[0] ?? ''));
    socket.on('error', reject);
  });
}

/**
 * An open connection to `url`'s server, for tests that write to it in steps (a request sent in
 * pieces, or after a pause); `answer` is everything received once the server closes it.
 */
export async function rawConnection(url: string): Promise<{ socket: net.Socket; answer: Promise<string> }> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
  const answer = new Promise<string>((resolve) => socket.on('close', () => resolve(received)));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  // After connecting, a reset by the server ends the answer; it is not the test's failure.
  socket.on('error', () => undefined);
  return { socket, answer };
}

/** Sends `bytes` on a new connection and no more; resolves with everything received once the server closes it. */
export async function sendRaw(url: string, bytes: string): Promise<string> {
  const { socket, answer } = await rawConnection(url);
  socket.write(bytes);
  return answer;
}
