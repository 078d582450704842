import type { MutationResolvers } from '../generated/graphql.js';
import { requireCaller } from './caller.js';

export const Mutation: MutationResolvers = {
  startVerification: async (_parent, { input }, context) => {
    const caller = requireCaller(context);
    return context.verification.start(caller, { workflow: input?.workflow, locale: input?.locale }, { signal: context.signal, requestId: context.requestId });
  },
};
