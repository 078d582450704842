import type { RequestHandler } from 'express';
import { ErrorCode } from './errors.js';

export const OVERLOAD_MESSAGE = 'The identity verification service is busy. Retry in a moment.';

/**
 * Load shedding at the door: at most `limit` GraphQL requests in progress in this process (the
 * bulkhead's slots plus its queue, see idv/upstream-guard.ts). Beyond that a request is answered
 * at once, before its body is read, its token verified or its document validated: the cheapest
 * refusal there is. Without it, a burst of thousands queues in the event loop, where every
 * refusal still costs a full GraphQL request, and answers arrive long after the deadline.
 */
export function admission(limit: number, onShed: () => void = () => undefined): RequestHandler {
  let inProgress = 0;
  return (req, res, next) => {
    // CORS preflights cost nothing and must keep answering.
    if (req.method === 'OPTIONS') return next();
    if (inProgress >= limit) {
      onShed();
      res.status(503).setHeader('retry-after', '1');
      res.json({
        errors: [{ message: OVERLOAD_MESSAGE, extensions: { code: ErrorCode.IDV_UNAVAILABLE, retryable: true, retryAfterSeconds: 1 } }],
      });
      return;
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
    next();
  };
}
