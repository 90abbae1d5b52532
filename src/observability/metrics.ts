import { collectDefaultMetrics, Registry } from "prom-client";

export type { Registry };

export interface MetricsRegistryOptions {
  /**
   * Collect Node.js process metrics (CPU, memory, event-loop lag, GC, handles).
   * @default true
   */
  defaultMetrics?: boolean;
  /**
   * Labels on every series, e.g. `{ replica: "a" }`.
   * @default {}
   */
  labels?: Record<string, string>;
}

/**
 * A Prometheus registry for one process. Not the prom-client global registry, so that several servers in one test
 * process do not collide. Served at `GET /metrics` by the API server.
 */
export function createMetricsRegistry(options: MetricsRegistryOptions = {}): Registry {
  const registry = new Registry();
  if (options.labels !== undefined) registry.setDefaultLabels(options.labels);
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}
