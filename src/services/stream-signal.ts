import type { HandlerContext } from "@connectrpc/connect";
import { drainSignalKey } from "../server/context-keys.js";

/**
 * The signal of a long-lived stream (watches): the call's own signal, also aborted when the server starts draining,
 * so that a graceful shutdown is never held up by watchers. `drained()` tells the two apart: a drained watch ends
 * cleanly and the client resumes on another replica (from its last sequence).
 */
export function streamSignal(ctx: HandlerContext): { signal: AbortSignal; drained: () => boolean } {
  const drain = ctx.values.get(drainSignalKey);
  return { signal: AbortSignal.any([ctx.signal, drain]), drained: () => drain.aborted && !ctx.signal.aborted };
}
