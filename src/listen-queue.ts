import { readFileSync } from 'node:fs';

/**
 * Linux silently caps listen(2)'s backlog at net.core.somaxconn (4096 on kernels since 5.4, 128
 * before). Connections beyond the queue are not refused: the kernel drops their SYN, or the
 * handshake's final ACK, and only a retransmission 1 s, 3 s, 7 s, … later completes them, so a
 * burst's tail reaches the gateway seconds late, too late for any shedding here to see the wait.
 * Operators need to know the cap.
 */
export function kernelBacklogCap(read: () => string = () => readFileSync('/proc/sys/net/core/somaxconn', 'utf8')): number | null {
  try {
    const value = Number(read().trim());
    return Number.isSafeInteger(value) && value > 0 ? value : null;
  } catch {
    // Not Linux, or /proc is not mounted: nothing is known, nothing to warn about.
    return null;
  }
}

/** The warning to log when the kernel queues fewer connections than HTTP_LISTEN_BACKLOG asks for, else null. */
export function backlogWarning(requested: number, cap: number | null): string | null {
  if (cap === null || cap >= requested) return null;
  return (
    `the kernel queues at most ${cap} new connections (net.core.somaxconn), not HTTP_LISTEN_BACKLOG=${requested}: ` +
    `in a larger burst the rest are dropped and their clients retry seconds later; raise net.core.somaxconn to ${requested} or more`
  );
}
