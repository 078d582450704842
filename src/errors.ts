import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';

/**
 * The error codes clients can branch on. Each has a fixed `retryable` answer, so a client can
 * decide "retry with backoff" or "show the user / fix the call" without knowing gateway internals.
 */
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  AUTH_UNAVAILABLE: 'AUTH_UNAVAILABLE',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  IDV_UNAVAILABLE: 'IDV_UNAVAILABLE',
  IDV_FAILED: 'IDV_FAILED',
  RATE_LIMITED: 'RATE_LIMITED',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const RETRYABLE: Record<ErrorCode, boolean> = {
  UNAUTHENTICATED: false,
  AUTH_UNAVAILABLE: true,
  BAD_USER_INPUT: false,
  IDV_UNAVAILABLE: true,
  IDV_FAILED: false,
  RATE_LIMITED: true,
  INTERNAL_SERVER_ERROR: false,
};

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
};

export const INTERNAL_ERROR_MESSAGE = 'Something went wrong in the gateway. It has been logged; try again later.';

export function gatewayError(
  code: ErrorCode,
  message: string,
  extra: { headers?: Record<string, string>; extensions?: Record<string, unknown> } = {},
): GraphQLError {
  const status = HTTP_STATUS[code];
  const http = status !== undefined || extra.headers ? { http: { status, headers: toHeaderMap(extra.headers) } } : {};
  return new GraphQLError(message, {
    extensions: { code, retryable: RETRYABLE[code], ...extra.extensions, ...http },
  });
}

function toHeaderMap(headers: Record<string, string> | undefined): Map<string, string> | undefined {
  return headers ? new Map(Object.entries(headers)) : undefined;
}

/**
 * Codes that reach the client as they are: ours, plus the ones Apollo Server and graphql-js
 * assign to a malformed request. Anything else is masked as INTERNAL_SERVER_ERROR.
 */
const PASSTHROUGH_CODES = new Set<string>([
  ...Object.values(ErrorCode).filter((code) => code !== ErrorCode.INTERNAL_SERVER_ERROR),
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_REQUEST',
  'OPERATION_RESOLUTION_FAILURE',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
]);

function isPassthroughCode(code: unknown): code is string {
  return typeof code === 'string' && PASSTHROUGH_CODES.has(code);
}

/**
 * The code of an error Apollo Server raises for a malformed request without naming one (an APQ
 * hash that does not match its query, an unsupported persisted-query version): it gives them an
 * HTTP 4xx status only. They are the caller's mistake, so BAD_REQUEST, with Apollo's message.
 */
function codeOf(error: unknown, formattedCode: unknown): unknown {
  // Apollo fills in INTERNAL_SERVER_ERROR for a missing code before formatError: look at the error's own.
  const extensions = (error as { extensions?: { code?: unknown; http?: { status?: unknown } } } | null)?.extensions;
  const status = extensions?.http?.status;
  if (extensions?.code === undefined && typeof status === 'number' && status >= 400 && status < 500) return 'BAD_REQUEST';
  return formattedCode;
}

/** The code a client sees for an error carrying `code`: the code itself when allow-listed, else INTERNAL_SERVER_ERROR. */
export function clientErrorCode(code: unknown): string {
  return isPassthroughCode(code) ? code : ErrorCode.INTERNAL_SERVER_ERROR;
}

/** The code a client sees for this error (maskError's answer), for logs and metrics. */
export function clientErrorCodeOf(error: GraphQLError): string {
  return clientErrorCode(codeOf(error, error.extensions?.code));
}

const UNEXPECTED_ERROR_LINE = 'unexpected error, masked for the client';
// Unexpected errors already logged with their request's id (see logUnexpectedErrors).
const loggedWithRequest = new WeakSet<object>();

/**
 * Logs the request's unexpected errors (those maskError will hide), with its request id: Apollo's
 * formatError, which masks them, is not told which request an error belongs to. Called from the
 * operation log's didEncounterErrors hook.
 */
export function logUnexpectedErrors(errors: readonly GraphQLError[], logger: Logger, requestId: string): void {
  for (const error of errors) {
    const code = codeOf(error, error.extensions?.code);
    if (isPassthroughCode(code)) continue;
    loggedWithRequest.add(error);
    logger.error({ requestId, code, cause: error.message, path: error.path }, UNEXPECTED_ERROR_LINE);
  }
}

/**
 * Apollo's formatError: the allow-listed codes pass through with `retryable` filled in (GraphQL's
 * own request errors are never retryable); anything else is an unexpected failure, answered with a
 * generic INTERNAL_SERVER_ERROR that reveals nothing of its cause, and logged here unless
 * logUnexpectedErrors already did (an error outside an operation has no request id to add).
 */
export function maskError(formatted: GraphQLFormattedError, error: unknown, logger: Logger): GraphQLFormattedError {
  const code = codeOf(error, formatted.extensions?.code);
  if (isPassthroughCode(code)) {
    const retryable = formatted.extensions?.retryable ?? (code in RETRYABLE && RETRYABLE[code as ErrorCode]);
    return { ...formatted, extensions: { ...formatted.extensions, code, retryable } };
  }
  if (!(typeof error === 'object' && error !== null && loggedWithRequest.has(error))) {
    logger.error({ code, cause: formatted.message, path: formatted.path }, UNEXPECTED_ERROR_LINE);
  }
  return {
    message: INTERNAL_ERROR_MESSAGE,
    ...(formatted.path ? { path: formatted.path } : {}),
    extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR, retryable: false },
  };
}
