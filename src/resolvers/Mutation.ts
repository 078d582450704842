import type { MutationResolvers } from '../generated/graphql.js';
import { requireCaller } from './caller.js';

export const Mutation: MutationResolvers = {
  startVerification: async (_parent, { input }, context) => {
    // For the operation log and metrics: the workflow asked for, or the default (the first name).
    context.scope.workflow = input?.workflow ?? context.verification.workflowNames[0] ?? null;
    const caller = requireCaller(context);
    return context.verification.start(caller, { workflow: input?.workflow, locale: input?.locale, idempotencyKey: input?.idempotencyKey }, { signal: context.signal, requestId: context.requestId });
  },
};
