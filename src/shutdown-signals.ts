/**
 * The signals that stop the gateway gracefully: SIGTERM (orchestrators), SIGINT (Ctrl-C), SIGHUP
 * (a closed terminal or ssh session). A module of its own, with no imports, so that main.ts can
 * listen for them before anything else is loaded.
 */
export const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
