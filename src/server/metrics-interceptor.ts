import type { Interceptor } from "@connectrpc/connect";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { codeName, rpcName } from "./rpc-labels.js";

/** Latency buckets in seconds: sub-millisecond unary calls up to minute-long streams. */
export const RPC_DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
] as const;

/** The RPC series, registered once per registry. */
export interface RpcMetrics {
  started: Counter<"rpc">;
  handled: Counter<"rpc" | "code">;
  duration: Histogram<"rpc" | "code">;
  inFlight: Gauge<"rpc">;
}

function once<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function rpcMetrics(registry: Registry): RpcMetrics {
  return {
    started: once(
      registry,
      "stackl_rpc_started_total",
      () =>
        new Counter({
          name: "stackl_rpc_started_total",
          help: "RPCs started, per method",
          labelNames: ["rpc"],
          registers: [registry],
        }),
    ),
    handled: once(
      registry,
      "stackl_rpc_handled_total",
      () =>
        new Counter({
          name: "stackl_rpc_handled_total",
          help: "RPCs completed, per method and status code",
          labelNames: ["rpc", "code"],
          registers: [registry],
        }),
    ),
    duration: once(
      registry,
      "stackl_rpc_duration_seconds",
      () =>
        new Histogram({
          name: "stackl_rpc_duration_seconds",
          help: "RPC duration from handler start to last message, per method and status code",
          labelNames: ["rpc", "code"],
          buckets: [...RPC_DURATION_BUCKETS],
          registers: [registry],
        }),
    ),
    inFlight: once(
      registry,
      "stackl_rpc_in_flight",
      () =>
        new Gauge({
          name: "stackl_rpc_in_flight",
          help: "RPCs being handled now, per method",
          labelNames: ["rpc"],
          registers: [registry],
        }),
    ),
  };
}

/** Counts and times every call (per `rpc` and final `code`); streams are measured until their last message. */
export function metricsInterceptor(registry: Registry): Interceptor {
  const m = rpcMetrics(registry);
  return (next) => async (req) => {
    const rpc = rpcName(req.method);
    const started = performance.now();
    m.started.inc({ rpc });
    m.inFlight.inc({ rpc });
    let finished = false;
    const done = (err: unknown): void => {
      if (finished) return;
      finished = true;
      const code = codeName(err);
      m.inFlight.dec({ rpc });
      m.handled.inc({ rpc, code });
      m.duration.observe({ rpc, code }, (performance.now() - started) / 1000);
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      done(err);
      throw err;
    }
    if (!res.stream) {
      done(undefined);
      return res;
    }
    const source = res.message;
    return {
      ...res,
      message: (async function* measured() {
        let failure: unknown;
        try {
          yield* source;
        } catch (err) {
          failure = err;
          throw err;
        } finally {
          done(failure ?? (req.signal.aborted ? req.signal.reason : undefined));
        }
      })(),
    };
  };
}
