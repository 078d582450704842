/**
 * One log line and one set of metrics per GraphQL operation: what ran, for whom (a pseudonym,
 * never the token), which workflow, how it ended, how long it took, and how long each upstream
 * call took.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApolloServerPlugin } from '@apollo/server';
import { Kind, type DocumentNode, type FragmentDefinitionNode, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import type { GatewayContext } from './context.js';
import { clientErrorCodeOf, logUnexpectedErrors } from './errors.js';
import { pseudonymize } from './logger.js';
import { CANCELLED, type GatewayMetrics } from './metrics.js';
import { rootFields } from './operation-limits.js';

/** The operation's label when no operation was resolved (unparsable, invalid, unknown persisted query). */
export const INVALID_OPERATION = 'invalid';
const START_VERIFICATION = 'startVerification';
const MAX_LOGGED_NAME = 100;

/**
 * Operations between their start and their log line, so that shutdown can wait for the lines of
 * requests it cut off (their line is written after their answer, which the cut ends).
 */
export class OperationsInFlight {
  #count = 0;
  #idle: (() => void)[] = [];

  begin(): void {
    this.#count += 1;
  }

  end(): void {
    this.#count -= 1;
    if (this.#count > 0) return;
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  /** Resolves once none is in flight, or after `timeoutMs`. */
  async settle(timeoutMs: number): Promise<void> {
    if (this.#count === 0) return;
    // An unref'd timer, as SharedFlights.settle's: it keeps nothing waiting once they are done.
    await Promise.race([new Promise<void>((resolve) => this.#idle.push(resolve)), sleep(timeoutMs, undefined, { ref: false })]);
  }
}

export function operationObserver(options: { logUserIds: boolean; metrics: GatewayMetrics; inFlight?: OperationsInFlight }): ApolloServerPlugin<GatewayContext> {
  const { logUserIds, metrics, inFlight } = options;
  return {
    async requestDidStart({ contextValue, schema }) {
      inFlight?.begin();
      // From the request's arrival, not from here: Apollo calls the context function, and with it
      // the token check (a JWKS fetch can take seconds), before any plugin hears of the request.
      const { started } = contextValue.scope;
      let label = INVALID_OPERATION;
      return {
        async didResolveOperation({ operation, document }) {
          if (operation) label = operationLabel(operation, schema, document);
        },
        async didEncounterErrors({ errors }) {
          logUnexpectedErrors(errors, contextValue.logger, contextValue.requestId);
        },
        async willSendResponse({ operationName, errors, contextValue: context }) {
          const seconds = (performance.now() - started) / 1000;
          const { auth, logger, scope, signal } = context ?? contextValue;
          // A caller who hung up never saw the error their leaving caused (the upstream work was
          // stopped): not the platform's failure, and not one for outage alerts.
          const code = signal?.aborted ? CANCELLED : errors?.[0] ? clientErrorCodeOf(errors[0]) : null;
          // Recorded once the answer is on its way, not before: the log line's write (a syscall
          // handed to libuv's thread pool) and the metrics took ~0.1 ms of each caller's wait at
          // 300/s. setImmediate runs after this turn's microtasks, in which the answer is written.
          setImmediate(() => {
            metrics.graphqlOperation(label, code);
            if (label === START_VERIFICATION) metrics.startVerification(code, scope.workflow, seconds);
            const userId = auth.ok ? auth.caller.userId : null;
            logger.info(
              {
                requestId: scope.requestId,
                operation: operationName ? operationName.slice(0, MAX_LOGGED_NAME) : null,
                field: label,
                user: userId === null ? null : logUserIds ? userId : pseudonymize(userId),
                ...(label === START_VERIFICATION ? { workflow: scope.workflow?.slice(0, MAX_LOGGED_NAME) ?? null } : {}),
                outcome: code ?? 'OK',
                // Why the token was refused or could not be checked (a bounded code or message, never the token).
                ...(!auth.ok && (code === 'UNAUTHENTICATED' || code === 'AUTH_UNAVAILABLE') ? { authFailure: auth.reason } : {}),
                durationMs: Math.round(seconds * 1000),
                upstream: scope.upstream,
              },
              'graphql operation',
            );
            inFlight?.end();
          });
        },
      };
    },
  };
}

/**
 * A bounded name for an operation, whatever the client called it: its root field when it selects
 * one (after validation, so always a field of the schema), through inline fragments and fragment
 * spreads too, "introspection" for schema queries, "other" for several root fields.
 */
export function operationLabel(operation: OperationDefinitionNode, schema: GraphQLSchema, document: DocumentNode | undefined): string {
  const fragmentOf = (name: string) =>
    document?.definitions.find((definition): definition is FragmentDefinitionNode => definition.kind === Kind.FRAGMENT_DEFINITION && definition.name.value === name);
  const names = new Set<string>();
  for (const field of rootFields(operation.selectionSet, fragmentOf)) {
    if (field.name.value !== '__typename') names.add(field.name.value);
  }
  if (names.size > 0 && [...names].every((name) => name === '__schema' || name === '__type')) return 'introspection';
  if (names.size !== 1) return 'other';
  const [name] = names as Set<string> & { size: 1 };
  const root = operation.operation === 'mutation' ? schema.getMutationType() : operation.operation === 'query' ? schema.getQueryType() : null;
  return name !== undefined && root?.getFields()[name] ? name : 'other';
}
