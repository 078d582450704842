/**
 * What to tell the user for each error code the gateway answers with (see the README's error
 * table). Kept free of the DOM and of Apollo, so an app can copy it as it is.
 */

export interface FailureMessage {
  readonly title: string;
  readonly detail: string;
  /** The gateway's `extensions.code`, or NETWORK when no GraphQL answer came back. */
  readonly code: string;
  /** Whether trying again later can succeed (the gateway's `extensions.retryable`). */
  readonly retryable: boolean;
}

/** The `extensions` of the first GraphQL error, or null when the request never got an answer. */
export type ErrorExtensions = Readonly<Record<string, unknown>> | null;

export function describeFailure(extensions: ErrorExtensions): FailureMessage {
  if (extensions === null) {
    return { code: 'NETWORK', retryable: true, title: "Can't reach the server", detail: 'Check your connection, then try again.' };
  }
  const code = typeof extensions.code === 'string' ? extensions.code : 'INTERNAL_SERVER_ERROR';
  switch (code) {
    case 'UNAUTHENTICATED':
      return { code, retryable: false, title: 'Please sign in again', detail: 'Your sign-in has expired or is not valid. Sign in again, then start the verification.' };
    case 'AUTH_UNAVAILABLE':
      return { code, retryable: true, title: "Sign-in can't be checked right now", detail: 'This is a problem on our side. Try again in a moment.' };
    case 'BAD_USER_INPUT':
      return { code, retryable: false, title: "This verification isn't available", detail: "The app asked for a kind of verification that isn't set up. Update the app or contact support." };
    case 'IDV_UNAVAILABLE':
      return { code, retryable: true, title: 'The verification service is busy', detail: `Try again ${retryDelay(extensions.retryAfterSeconds)}.` };
    case 'RATE_LIMITED':
      return { code, retryable: true, title: 'Too many verifications started', detail: `You have started several verifications in a short time. Try again ${retryDelay(extensions.retryAfterSeconds)}.` };
    case 'IDV_FAILED':
      return { code, retryable: false, title: "Verification can't start right now", detail: "This needs a fix on our side, so trying again won't help yet. Please contact support if it persists." };
    default:
      return { code, retryable: false, title: 'Something went wrong', detail: 'An unexpected error happened on our side. Try again later.' };
  }
}

function retryDelay(retryAfterSeconds: unknown): string {
  if (typeof retryAfterSeconds !== 'number' || !(retryAfterSeconds > 0)) return 'in a moment';
  return retryAfterSeconds === 1 ? 'in 1 second' : `in ${Math.ceil(retryAfterSeconds)} seconds`;
}

/** Time left as `m:ss`, or `h:mm:ss` from one hour up; `0:00` once past. */
export function formatRemaining(milliseconds: number): string {
  const total = Math.max(0, Math.ceil(milliseconds / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}
