import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode } from './errors.js';
import { sendJson } from './http-answers.js';

export const OVERLOAD_MESSAGE = 'The identity verification service is busy. Retry in a moment.';

/** Takes a slot for the request until its response ends; false when refused (the 503 is sent). */
export type Admit = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * Load shedding at the door: at most `limit` GraphQL requests in progress in this process (the
 * bulkhead's slots plus its queue, see idv/upstream-guard.ts). Beyond that a request is answered
 * at once, before its body is read, its token verified or its document validated: the cheapest
 * refusal there is. Without it, a burst of thousands queues in the event loop, where every
 * refusal still costs a full GraphQL request, and answers arrive long after the deadline.
 */
export function admission(limit: number): Admit {
  let inProgress = 0;
  return (req, res) => {
    // CORS preflights cost nothing and must keep answering.
    if (req.method === 'OPTIONS') return true;
    if (inProgress >= limit) {
      refuse(res);
      return false;
    }
    inProgress += 1;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      inProgress -= 1;
    };
    res.once('finish', release);
    res.once('close', release);
    return true;
  };
}

function refuse(res: ServerResponse): void {
  res.setHeader('retry-after', '1');
  sendJson(res, 503, {
    errors: [{ message: OVERLOAD_MESSAGE, extensions: { code: ErrorCode.IDV_UNAVAILABLE, retryable: true, retryAfterSeconds: 1 } }],
  });
}
