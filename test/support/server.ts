// Starts the STACKL API server in-process on 127.0.0.1, port 0, for e2e tests of the server layer.
import { ConnectError } from "@connectrpc/connect";
import type { Registry } from "prom-client";
import { type Config, loadConfig } from "../../src/config/config.js";
import { createLogger, type Logger } from "../../src/observability/logger.js";
import { type StacklServer, startServer } from "../../src/server/create-server.js";
import type { HealthComponent } from "../../src/server/health-monitor.js";
import type { RegisterServices } from "../../src/server/routes.js";

export interface TestServerOptions {
  /** Service implementations (partial is fine); the rest of stackl.v1 answers UNIMPLEMENTED. @default none */
  register?: RegisterServices;
  /** Readiness components. @default [] */
  healthComponents?: readonly HealthComponent[];
  /** `STACKL_*` variables on top of the test defaults (port 0, loopback, silent logs). @default {} */
  env?: Record<string, string>;
  /** Readiness poll period. @default 50 ms, so that health changes show quickly */
  healthPollIntervalMs?: number;
  /** @default a new registry */
  metrics?: Registry;
}

export interface TestServer {
  server: StacklServer;
  config: Config;
  logger: Logger;
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Closes the server (graceful, with the configured grace); safe to call twice. */
  close(): Promise<void>;
}

/**
 * Starts a server on a free port. Logs are silent unless STACKL_TEST_LOG_LEVEL is set (e.g. `debug`).
 * Call `close()` in an `after`/`t.after` hook.
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const config = loadConfig({
    env: {
      STACKL_HOST: "127.0.0.1",
      STACKL_PORT: "0",
      STACKL_DATA_DIR: "/nonexistent/stackl-test-data",
      ...options.env,
    },
  });
  const level = (process.env.STACKL_TEST_LOG_LEVEL ?? "silent") as Config["logLevel"];
  const logger = createLogger({ level, destination: process.stderr });
  const server = await startServer({
    config,
    logger,
    register: options.register,
    healthComponents: options.healthComponents,
    healthPollIntervalMs: options.healthPollIntervalMs ?? 50,
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
  });
  return { server, config, logger, url: server.url, port: server.port, close: () => server.close() };
}

/** The ConnectError a call failed with; fails the test if the call succeeded. */
export async function callError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail, but it succeeded");
}
