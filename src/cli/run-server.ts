import { loadApiTokens } from "../config/auth-config.js";
import type { Config } from "../config/config.js";
import { describeConfig } from "../config/config.js";
import { createLogger, type Logger } from "../observability/logger.js";
import { createMetricsRegistry } from "../observability/metrics.js";
import { readTls, type StacklServer, startServer } from "../server/create-server.js";
import { VERSION } from "../version.js";
import { buildRuntime, type RuntimeRole } from "./wiring.js";

/** How long the process may linger after a clean stop before it exits anyway (stray handles). */
export const EXIT_LINGER_MS = 1_000;

export interface RunServerOptions {
  config: Config;
  role: Extract<RuntimeRole, "serve" | "dev">;
  /** Where JSON logs go. @default stdout */
  logDestination?: NodeJS.WritableStream & { write(chunk: string): boolean };
  /** Called once the server is running and SERVING, with the time since the process started. */
  onReady?: (server: StacklServer, startToHealthyMs: number, logger: Logger) => void;
}

/**
 * The body of `stackl serve` and `stackl dev`: runtime, server, then wait for SIGTERM/SIGINT. The first signal
 * starts a graceful shutdown (grace: STACKL_SHUTDOWN_GRACE); a second one forces it. Resolves with the exit code.
 */
export async function runServer(options: RunServerOptions): Promise<number> {
  const { config, role } = options;
  await readTls(config); // an unreadable certificate fails now, before the store or the bus are opened
  const logger = createLogger({
    level: config.logLevel,
    base: { replica: config.replicaName },
    ...(options.logDestination === undefined ? {} : { destination: options.logDestination }),
  });
  logger.info({ version: VERSION, role, node: process.version, config: describeConfig(config) }, "stackl starting");

  const apiTokens = loadApiTokens();
  const stop = new AbortController();
  const force = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stop.signal.aborted) {
      logger.info({ signal }, "shutting down (send the signal again to force)");
      stop.abort();
    } else if (!force.signal.aborted) {
      logger.warn({ signal }, "forcing shutdown");
      force.abort();
    }
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  try {
    let runtime: Awaited<ReturnType<typeof buildRuntime>>;
    try {
      runtime = await buildRuntime(config, logger, stop.signal, role);
    } catch (err) {
      if (stop.signal.aborted) return 0; // stopped while starting: not an error
      throw err;
    }
    let server: StacklServer;
    try {
      server = await startServer({
        config,
        logger,
        register: runtime.register,
        healthComponents: runtime.healthComponents,
        apiTokens,
        metrics: createMetricsRegistry({ labels: { replica: config.replicaName } }),
        signal: stop.signal,
      });
    } catch (err) {
      await runtime.close(force.signal);
      if (stop.signal.aborted) return 0; // stopped while starting: not an error
      throw err;
    }
    void waitServing(server, stop.signal).then((ok) => {
      if (!ok) return;
      const ms = performance.now(); // since process start (performance.timeOrigin), module loading included
      logger.info({ start_to_healthy_ms: Math.round(ms), url: server.url }, "stackl healthy");
      options.onReady?.(server, ms, logger);
    });
    if (!stop.signal.aborted) {
      await new Promise<void>((resolve) => stop.signal.addEventListener("abort", () => resolve(), { once: true }));
    }
    await server.close(force.signal);
    await runtime.close(force.signal);
    logger.info({ state: server.state }, "stackl stopped");
    return server.state === "stopped" ? 0 : 1;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}

/** Resolves true once the server reports SERVING, false if `signal` aborts first. */
async function waitServing(server: StacklServer, signal: AbortSignal): Promise<boolean> {
  for await (const status of server.health.watch("", signal)) {
    if (status === "SERVING") return true;
  }
  return false;
}
