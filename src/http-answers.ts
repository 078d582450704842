/**
 * Answers written straight on node's response, so the GraphQL handler (graphql-http.ts) and the
 * Express routes send the same bytes: Express's `res.json` headers, GraphQL's error shape.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import Negotiator from 'negotiator';
import type { Logger } from 'pino';
import { ErrorCode, INTERNAL_ERROR_MESSAGE } from './errors.js';

/** The whole body at once, with its Content-Length, as Express's res.send sent it. */
export function sendText(res: ServerResponse, text: string): void {
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/** What Express's `res.status(status).json(body)` sends. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  sendText(res, JSON.stringify(body));
}

const JSON_TYPE = 'application/json; charset=utf-8';
const GRAPHQL_RESPONSE_TYPE = 'application/graphql-response+json; charset=utf-8';
// What Apollo answers an operation in (its chooseContentTypeForSingleResultResponse), parameters
// included: an Accept of `application/json; charset=utf-8` must match as it does there.
const APOLLO_ANSWER_TYPES = [JSON_TYPE, GRAPHQL_RESPONSE_TYPE, 'application/json; callbackSpec=1.0; charset=utf-8'];

/** Whether an Accept header (absent: anything) takes a media type Apollo answers operations in. */
export function acceptsGraphqlAnswer(accept: string | undefined): boolean {
  return !accept || new Negotiator({ headers: { accept } }).mediaType(APOLLO_ANSWER_TYPES) !== undefined;
}

/** Apollo's 406, with its message, for a request whose Accept takes none of those types. */
export function sendNotAcceptable(res: ServerResponse): void {
  sendGraphqlErrors(res, 406, {
    errors: [
      {
        message: "An 'accept' header was provided for this request which does not accept application/json or application/graphql-response+json",
        extensions: { code: 'BAD_REQUEST', retryable: false },
      },
    ],
  });
}

/**
 * A GraphQL error answer the gateway writes itself, in the media type the client prefers, chosen
 * as Apollo chooses for its own answers (GraphQL over HTTP; negotiator, q-values included):
 * application/graphql-response+json or application/json, the latter when the header accepts
 * neither, since an error answer is better than a 406.
 */
export function sendGraphqlErrors(res: ServerResponse, status: number, body: unknown): void {
  const accept = res.req?.headers.accept;
  const type = accept ? (new Negotiator({ headers: { accept } }).mediaType([JSON_TYPE, GRAPHQL_RESPONSE_TYPE]) ?? JSON_TYPE) : JSON_TYPE;
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  sendText(res, JSON.stringify(body));
}

/**
 * Failures before GraphQL runs (malformed JSON, a body over the limit, a bad content encoding) and
 * unexpected ones get a JSON answer in GraphQL's error shape, never an HTML error page. A 5xx is
 * logged, with the request id.
 */
export function answerRequestError(res: ServerResponse, error: unknown, logger: Logger, bodyLimitBytes: number, requestId: string | undefined): void {
  const status = httpStatusOf(error);
  const message = status < 500 ? requestErrorMessage(status, (error as { type?: unknown }).type, bodyLimitBytes) : INTERNAL_ERROR_MESSAGE;
  if (status >= 500) logger.error({ requestId, err: errorSummary(error) }, 'request failed');
  sendGraphqlErrors(res, status, {
    errors: [{ message, extensions: { code: status < 500 ? 'BAD_REQUEST' : ErrorCode.INTERNAL_SERVER_ERROR, retryable: false } }],
  });
}

/** What the client is told of a body body-parser refused, by its status and its error's `type`. */
function requestErrorMessage(status: number, type: unknown, bodyLimitBytes: number): string {
  if (status === 413) return `The request body is larger than ${bodyLimitBytes} bytes.`;
  if (type === 'charset.unsupported') return 'The request body must be JSON in UTF-8: send "Content-Type: application/json" with no other charset.';
  if (type === 'encoding.unsupported') return 'The request body\'s Content-Encoding is not supported: send it uncompressed, or with gzip, deflate or br.';
  return 'The request body is not valid JSON for a GraphQL request.';
}

/** What the log says of an error: its name and message, not the error itself (body-parser's carry the request body). */
export function errorSummary(error: unknown): { name: unknown; message: unknown } {
  return { name: (error as Error)?.name, message: (error as Error)?.message };
}

/** The status body-parser (http-errors) gave the error, else 500. */
function httpStatusOf(error: unknown): number {
  const status = (error as { status?: unknown })?.status;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}

/**
 * A request node's HTTP parser refused before any handler saw it (malformed, headers too large) or
 * that the client took too long to send (HTTP_REQUEST_TIMEOUT_MS): the same JSON error shape, where
 * node would write a bare status line. Written on the socket, which is then closed, as node does;
 * never into a response already under way.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  // node's own current response on this connection: the answer to the request being read (its
  // body timed out), or, on a pipelined connection, to an earlier request still being worked on.
  // Only in the first case is an answer of ours the right first bytes on the wire.
  const response = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
  const answersAnother = response != null && (response.headersSent || response.req.complete);
  if (error.code === 'ECONNRESET' || !socket.writable || answersAnother) {
    socket.destroy();
    return;
  }
  const [status, message] = clientErrorAnswer(error.code);
  const body = JSON.stringify({ errors: [{ message, extensions: { code: 'BAD_REQUEST', retryable: status === 408 } }] });
  socket.write(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
  );
  socket.destroySoon();
}

function clientErrorAnswer(code: string | undefined): [number, string] {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'The request was not received in time. Send the whole request at once and retry.'];
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'The request headers are too large.'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, 'The request has too large chunk extensions.'];
    default:
      return [400, 'The request is not valid HTTP.'];
  }
}
