import type { QueryResolvers } from '../generated/graphql.js';
import { requireCaller } from './caller.js';

export const Query: QueryResolvers = {
  workflows: (_parent, _args, context) => {
    requireCaller(context);
    return context.verification.workflowNames;
  },
};
