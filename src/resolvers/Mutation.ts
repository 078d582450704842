import type { MutationResolvers } from '../generated/graphql.js';
import { requireCaller } from './caller.js';

export const Mutation: MutationResolvers = {
  startVerification: async (_parent, { input }, context) => {
    // For the operation log and metrics: the workflow asked for, or the default (the first name).
    // Only configured names reach logs and metric labels; anything a client typed is `unknown`.
    const asked = input?.workflow ?? context.verification.workflowNames[0] ?? null;
    context.scope.workflow = asked !== null && context.verification.workflowNames.includes(asked) ? asked : 'unknown';
    const caller = requireCaller(context);
    return context.verification.start(caller, { workflow: input?.workflow, locale: input?.locale, idempotencyKey: input?.idempotencyKey }, {
      signal: context.signal,
      requestId: context.requestId,
      upstreamCalls: context.scope.upstream,
    });
  },
};
