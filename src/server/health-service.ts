import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { type Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { drainSignalKey } from "./context-keys.js";
import type { HealthMonitor, ServingStatus } from "./health-monitor.js";

function toProto(status: ServingStatus | undefined): HealthCheckResponse_ServingStatus {
  switch (status) {
    case "SERVING":
      return HealthCheckResponse_ServingStatus.SERVING;
    case "NOT_SERVING":
      return HealthCheckResponse_ServingStatus.NOT_SERVING;
    case undefined:
      return HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
    default: {
      const never: never = status;
      return never;
    }
  }
}

/**
 * `grpc.health.v1.Health` over a `HealthMonitor`: `""` is the whole server, each served service answers by its
 * fully-qualified name. Check on an unknown service fails with NOT_FOUND; Watch answers SERVICE_UNKNOWN and keeps the
 * stream open (both as the gRPC health protocol specifies). Watch streams end when the server starts draining, after
 * sending NOT_SERVING, so they do not hold up a graceful shutdown.
 */
export function createHealthService(monitor: HealthMonitor): ServiceImpl<typeof Health> {
  return {
    check(req) {
      const status = monitor.status(req.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
      }
      return { status: toProto(status) };
    },
    async *watch(req, ctx) {
      const signal = AbortSignal.any([ctx.signal, ctx.values.get(drainSignalKey)]);
      for await (const status of monitor.watch(req.service, signal)) {
        yield { status: toProto(status) };
      }
      if (ctx.signal.aborted) throw ConnectError.from(ctx.signal.reason);
    },
  };
}
