import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { formatDuration } from "../config/duration.js";

/** Request headers through which the three protocols carry a client deadline. */
const TIMEOUT_HEADERS = ["grpc-timeout", "connect-timeout-ms"] as const;

/**
 * Gives unary calls that arrive WITHOUT a client deadline the server's maximum deadline, so that no unary handler
 * waits forever (an unbounded request is a resource leak, reliability notes 3.6). Calls with a deadline are capped
 * by the adapter's `maxTimeoutMs` instead, and streams (watches, the agent session) are left alone: their liveness
 * comes from heartbeats and keepalive, not deadlines.
 */
export function defaultDeadlineInterceptor(maxDeadlineMs: number): Interceptor {
  return (next) => async (req) => {
    if (req.stream || TIMEOUT_HEADERS.some((h) => req.header.has(h))) return next(req);
    const controller = new AbortController();
    const timer = setTimeout(() => {
      controller.abort(
        new ConnectError(`the server deadline of ${formatDuration(maxDeadlineMs)} was exceeded`, Code.DeadlineExceeded),
      );
    }, maxDeadlineMs);
    timer.unref();
    try {
      return await next({ ...req, signal: AbortSignal.any([req.signal, controller.signal]) });
    } finally {
      clearTimeout(timer);
    }
  };
}
