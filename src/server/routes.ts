import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { STACKL_SERVICES } from "./api-services.js";
import type { HealthMonitor } from "./health-monitor.js";
import { createHealthService } from "./health-service.js";
import { ReflectionIndex } from "./reflection-index.js";
import { REFLECTION_SERVICES, registerReflection } from "./reflection-service.js";
import { unimplementedMethod, withUnimplemented } from "./unimplemented.js";

/**
 * Registers service implementations on the router. Implement any subset of any service; whatever a stackl.v1
 * service leaves out answers UNIMPLEMENTED naming the issue that builds it. Registering one method twice throws.
 */
export type RegisterServices = (router: ConnectRouter) => void;

export interface RoutesOptions {
  /** @default registers nothing: every stackl.v1 method answers UNIMPLEMENTED */
  register?: RegisterServices | undefined;
  /** The health monitor, read when the first health call arrives (it is built from the served services). */
  health: () => HealthMonitor;
}

/**
 * A router wrapper that records what `register` adds and completes partial service implementations with
 * UNIMPLEMENTED handlers, so that a method is never silently missing.
 */
function recordingRouter(router: ConnectRouter, registered: Set<DescMethod>): ConnectRouter {
  const claim = (method: DescMethod): void => {
    if (registered.has(method)) throw new Error(`${method.parent.typeName}.${method.name} is registered twice`);
    registered.add(method);
  };
  const wrapper: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, implementation, options) {
      for (const method of service.methods) claim(method);
      router.service(service, withUnimplemented(service, implementation) as typeof implementation, options);
      return wrapper;
    },
    rpc(method, impl, options) {
      claim(method);
      router.rpc(method, impl, options);
      return wrapper;
    },
  };
  return wrapper;
}

/**
 * Every route of the API server, in one place: the caller's implementations, UNIMPLEMENTED for the rest of every
 * stackl.v1 service, `grpc.health.v1.Health`, and gRPC reflection (v1 and v1alpha) over every served service.
 * Returns the served services.
 */
export function registerRoutes(router: ConnectRouter, options: RoutesOptions): DescService[] {
  const registered = new Set<DescMethod>();
  options.register?.(recordingRouter(router, registered));
  for (const service of STACKL_SERVICES) {
    for (const method of service.methods) {
      if (!registered.has(method)) router.rpc(method, unimplementedMethod(method) as never);
    }
  }
  let healthImpl: ServiceImpl<typeof Health> | undefined;
  const health = (): ServiceImpl<typeof Health> => {
    healthImpl ??= createHealthService(options.health());
    return healthImpl;
  };
  router.service(Health, {
    check: (req, ctx) => health().check(req, ctx),
    watch: (req, ctx) => health().watch(req, ctx),
  });
  const served = new Map<string, DescService>();
  for (const handler of router.handlers) served.set(handler.service.typeName, handler.service);
  for (const service of REFLECTION_SERVICES) served.set(service.typeName, service);
  registerReflection(router, new ReflectionIndex(served.values()));
  return [...served.values()];
}
