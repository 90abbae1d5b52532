import { randomUUID } from "node:crypto";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../observability/logger.js";
import { requestIdKey, requestLoggerKey } from "./context-keys.js";
import { codeName, rpcName } from "./rpc-labels.js";

/** Services whose calls are logged at debug level only (probes and tooling would drown the log). */
const QUIET_SERVICES: ReadonlySet<string> = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

/** Codes that mean the server (not the caller) has a problem: logged at warn. */
const SERVER_SIDE_CODES: ReadonlySet<string> = new Set(["internal", "unknown", "data_loss", "unavailable"]);

/**
 * One log line per call, when it ends: `rpc`, `request_id`, `code`, `duration_ms`, and for streams the number of
 * messages each way. Puts a child logger with `rpc` and `request_id` bound into `ctx.values` (`requestLoggerKey`)
 * for the handler. Runs outermost, so it sees the code the client gets.
 */
export function loggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    let requestId = req.contextValues.get(requestIdKey);
    if (requestId === "") {
      requestId = randomUUID();
      req.contextValues.set(requestIdKey, requestId);
    }
    const rpc = rpcName(req.method);
    const log = logger.child({ rpc, request_id: requestId });
    req.contextValues.set(requestLoggerKey, log);
    const quiet = QUIET_SERVICES.has(req.service.typeName);
    const done = (err: unknown, extra?: Record<string, number>): void => {
      const code = codeName(err);
      const fields: Record<string, unknown> = {
        code,
        duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
        ...extra,
      };
      if (err !== undefined) fields.error = ConnectError.from(err).rawMessage;
      if (SERVER_SIDE_CODES.has(code)) log.warn(fields, "rpc failed");
      else if (quiet) log.debug(fields, "rpc done");
      else log.info(fields, "rpc done");
    };

    if (!req.stream) {
      try {
        const res = await next(req);
        done(undefined);
        return res;
      } catch (err) {
        done(err);
        throw err;
      }
    }

    let received = 0;
    const countedRequest = {
      ...req,
      message: (async function* counted() {
        for await (const m of req.message) {
          received++;
          yield m;
        }
      })(),
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(countedRequest);
    } catch (err) {
      done(err, { messages_received: received, messages_sent: 0 });
      throw err;
    }
    if (!res.stream) {
      done(undefined, { messages_received: received, messages_sent: 1 });
      return res;
    }
    const source = res.message;
    return {
      ...res,
      message: (async function* logged() {
        let sent = 0;
        let failure: unknown;
        try {
          for await (const m of source) {
            sent++;
            yield m;
          }
        } catch (err) {
          failure = err;
          throw err;
        } finally {
          const cancelled = failure === undefined && req.signal.aborted ? req.signal.reason : undefined;
          done(failure ?? cancelled, { messages_received: received, messages_sent: sent });
        }
      })(),
    };
  };
}
