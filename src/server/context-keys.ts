import { createContextKey } from "@connectrpc/connect";
import type { Logger } from "../observability/logger.js";
import { silentLogger } from "../observability/logger.js";

/**
 * Context values every handler can read from `ctx.values`:
 *
 * - `requestLoggerKey`: the per-request pino child logger (`rpc`, `request_id` bound); set by the logging interceptor.
 * - `requestIdKey`: the request id (from `x-request-id`, or generated); echoed in the `x-request-id` response header.
 * - `drainSignalKey`: aborted when the server starts draining. Long-lived streams (watches) end on it so that a
 *   graceful shutdown is not held up by them; unary calls ignore it and finish within the grace period.
 */
export const requestLoggerKey = createContextKey<Logger>(silentLogger(), { description: "stackl request logger" });

export const requestIdKey = createContextKey<string>("", { description: "stackl request id" });

const neverAborted = new AbortController().signal;
export const drainSignalKey = createContextKey<AbortSignal>(neverAborted, { description: "stackl drain signal" });

/** Header carrying the request id both ways. */
export const REQUEST_ID_HEADER = "x-request-id";

/** The authenticated caller: a name and its roles (`admin`, `viewer`, `agent`), set by the auth interceptor. */
export interface Principal {
  readonly name: string;
  readonly roles: readonly string[];
}

/** Without API tokens configured (the embedded default, loopback), every caller is the local administrator. */
export const LOCAL_PRINCIPAL: Principal = { name: "local", roles: ["admin"] };

export const principalKey = createContextKey<Principal>(LOCAL_PRINCIPAL, { description: "stackl principal" });
