import { ApolloArmor } from '@escape.tech/graphql-armor';
import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError, Kind, type FieldNode, type FragmentDefinitionNode, type SelectionSetNode, type ValidationRule } from 'graphql';
import type { OperationLimits } from './config.js';

/**
 * Request-shape limits, applied during validation (before any resolver runs or any upstream
 * call is made): depth, aliases, tokens, directives and cost via graphql-armor, plus our own rule
 * that a request starts at most one verification. In production the limits' values stay out of
 * error messages, so they cannot be probed.
 */
export function operationLimits(
  limits: OperationLimits,
  production: boolean,
): { plugins: ApolloServerPlugin[]; validationRules: ValidationRule[]; parseOptions: { maxTokens: number } } {
  const exposeLimits = !production;
  const armor = new ApolloArmor({
    // The errorMessage is what production says instead of the limit's value.
    maxDepth: { n: limits.maxDepth, exposeLimits, errorMessage: 'The query is nested too deeply.' },
    maxAliases: { n: limits.maxAliases, exposeLimits, errorMessage: 'The query uses too many aliases.' },
    // Counted by graphql-js's own parser instead (Apollo's parseOptions.maxTokens): armor's token
    // plugin throws from a hook, which Apollo answers with HTTP 500 instead of a 400 parse error.
    maxTokens: { enabled: false },
    maxDirectives: { n: limits.maxDirectives, exposeLimits, errorMessage: 'The query uses too many directives.' },
    costLimit: { maxCost: limits.maxCost, exposeLimits, errorMessage: 'The query is too costly to run.' },
    // "Did you mean …?" hints reveal the schema; Apollo's hideSchemaDetailsFromClientErrors covers it.
    blockFieldSuggestion: { enabled: false },
  }).protect();
  // graphql-armor's declarations resolve @apollo/server's CommonJS types; the plugin objects are the same.
  return {
    plugins: armor.plugins as unknown as ApolloServerPlugin[],
    validationRules: [...armor.validationRules, singleVerificationPerRequest, queriesAndMutationsOnly],
    parseOptions: { maxTokens: limits.maxTokens },
  };
}

const TOKEN_LIMIT_MESSAGE = /^Syntax Error: Document contains more that \d+ tokens\. Parsing aborted\.$/;
const SYNTAX_ERROR_PREFIX = 'Syntax Error: ';

/** graphql-js names the token limit in its message; production keeps limits to itself. */
export function hideLimit(message: string): string {
  return TOKEN_LIMIT_MESSAGE.test(message) ? 'Syntax Error: the document is too large.' : message;
}

/**
 * graphql-armor words its limits' validation errors "Syntax Error: …", which sends a client
 * looking for a typo; a validation error is never a syntax error (those are GRAPHQL_PARSE_FAILED).
 */
export function withoutFalseSyntaxError(message: string, code: unknown): string {
  return code === 'GRAPHQL_VALIDATION_FAILED' && message.startsWith(SYNTAX_ERROR_PREFIX) ? message.slice(SYNTAX_ERROR_PREFIX.length) : message;
}

/**
 * Each startVerification creates a paid upstream session, so aliasing it (`a: startVerification
 * b: startVerification …`) would multiply upstream work from one request. One per operation.
 */
export const singleVerificationPerRequest: ValidationRule = (context) => ({
  OperationDefinition(operation) {
    if (operation.operation !== 'mutation') return;
    const starts = rootFields(operation.selectionSet, (name) => context.getFragment(name)).filter((field) => field.name.value === 'startVerification');
    if (starts.length > 1) {
      context.reportError(new GraphQLError('startVerification may be selected only once per request.', { nodes: operation }));
    }
  },
});

/**
 * The fields an operation selects at its root, through inline fragments and fragment spreads
 * (each fragment once): what runs, whatever way the document spells it.
 */
export function rootFields(selectionSet: SelectionSetNode, fragmentOf: (name: string) => FragmentDefinitionNode | null | undefined): FieldNode[] {
  const fields: FieldNode[] = [];
  const visited = new Set<string>();
  const collect = (selections: SelectionSetNode): void => {
    for (const selection of selections.selections) {
      if (selection.kind === Kind.FIELD) {
        fields.push(selection);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        collect(selection.selectionSet);
      } else if (!visited.has(selection.name.value)) {
        visited.add(selection.name.value);
        const fragment = fragmentOf(selection.name.value);
        if (fragment) collect(fragment.selectionSet);
      }
    }
  };
  collect(selectionSet);
  return fields;
}

/**
 * The schema has no subscription type. graphql-js 16 validates a subscription against it without
 * complaint and fails only in execution, which reads as an unexpected failure (graphql-js 17 has
 * a rule for this, KnownOperationTypesRule): a 400 validation error says what is wrong instead.
 */
export const queriesAndMutationsOnly: ValidationRule = (context) => ({
  OperationDefinition(operation) {
    if (operation.operation !== 'subscription' || context.getSchema().getSubscriptionType()) return;
    context.reportError(new GraphQLError('This gateway has no subscriptions; send a query or a mutation.', { nodes: operation }));
  },
});
