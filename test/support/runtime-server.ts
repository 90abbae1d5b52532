// Starts the real STACKL runtime (store, bus, task system, services) and API server in-process on a free port.
import { buildRuntime, type Runtime } from "../../src/cli/wiring.js";
import { type Config, loadConfig } from "../../src/config/config.js";
import { createLogger } from "../../src/observability/logger.js";
import { startServer } from "../../src/server/create-server.js";

export interface RuntimeServer {
  url: string;
  port: number;
  config: Config;
  runtime: Runtime;
  close(): Promise<void>;
}

/** The test defaults: loopback, port 0, silent logs; `vars` are STACKL_* settings on top. */
export function runtimeConfig(vars: Record<string, string>): Config {
  return loadConfig({ env: { STACKL_HOST: "127.0.0.1", STACKL_PORT: "0", STACKL_SHUTDOWN_GRACE: "2s", ...vars } });
}

export async function startRuntimeServer(
  vars: Record<string, string>,
  role: "serve" | "dev" = "serve",
): Promise<RuntimeServer> {
  const config = runtimeConfig(vars);
  const logger = createLogger({
    level: (process.env.STACKL_TEST_LOG_LEVEL ?? "silent") as Config["logLevel"],
    destination: process.stderr,
  });
  const life = new AbortController();
  const runtime = await buildRuntime(config, logger, life.signal, role);
  const server = await startServer({
    config,
    logger,
    register: runtime.register,
    healthComponents: runtime.healthComponents,
  });
  return {
    url: server.url,
    port: server.port,
    config,
    runtime,
    async close() {
      await server.close();
      life.abort();
      await runtime.close();
    },
  };
}
