import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Registry } from "prom-client";
import type { ApiToken } from "../config/auth-config.js";
import { formatByteSize } from "../config/byte-size.js";
import type { Config } from "../config/config.js";
import { ConfigError } from "../config/config-error.js";
import { formatDuration } from "../config/duration.js";
import type { Logger } from "../observability/logger.js";
import { silentLogger } from "../observability/logger.js";
import { createMetricsRegistry } from "../observability/metrics.js";
import { authInterceptor } from "./auth-interceptor.js";
import { drainSignalKey, REQUEST_ID_HEADER, requestIdKey } from "./context-keys.js";
import { defaultDeadlineInterceptor } from "./deadline-interceptor.js";
import { errorInterceptor } from "./error-interceptor.js";
import { useSpecGrpcMessageEncoding } from "./grpc-message-encoding.js";
import { type HealthComponent, HealthMonitor } from "./health-monitor.js";
import { httpRoutes } from "./http-routes.js";
import { Listener, type NodeRequest, type NodeResponse } from "./listener.js";
import { loggingInterceptor } from "./logging-interceptor.js";
import { metricsInterceptor } from "./metrics-interceptor.js";
import { type RegisterServices, registerRoutes } from "./routes.js";

/** Lifecycle of the API server. Every transition is logged (`from`, `to`). */
export type ServerState = "starting" | "running" | "draining" | "stopped" | "failed";

/** Depth of nested messages the server parses (protobuf-es `recursionLimit`, binary and JSON; DESIGN section 6). */
export const PROTOBUF_RECURSION_LIMIT = 64;
/** After the grace period, handlers are aborted; this is how long they get to send their error before sockets close. */
export const ABORT_FLUSH_MS = 1_000;
/** Longest wait for connections to close by themselves once no call is in flight, before they are cut. */
export const CLOSE_TIMEOUT_MS = 2_000;

/** A request id from a client is kept only if it looks like one (no log injection, bounded size). */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface StartServerOptions {
  /** Validated configuration: listen address, TLS files, message and deadline limits, shutdown grace. */
  config: Config;
  /**
   * Process logger; the server logs through `logger.child({ component: "server" })`.
   * @default a silent logger
   */
  logger?: Logger;
  /**
   * Registers service implementations (partial ones are fine). Every stackl.v1 method it leaves out answers
   * UNIMPLEMENTED naming the issue that implements it.
   * @default registers nothing
   */
  register?: RegisterServices;
  /**
   * Readiness of the dependencies (store, bus, …). The server is SERVING only when all are ready.
   * @default [] (SERVING while running)
   */
  healthComponents?: readonly HealthComponent[];
  /**
   * API tokens (STACKL_API_TOKENS). Empty: every caller is the local administrator (embedded default on loopback).
   * @default []
   */
  apiTokens?: readonly ApiToken[];
  /**
   * Prometheus registry the RPC metrics go to; served at `GET /metrics`.
   * @default a new registry with the Node.js default metrics
   */
  metrics?: Registry;
  /**
   * Aborting it closes the server, like `close()`.
   * @default none
   */
  signal?: AbortSignal;
  /**
   * Period of the readiness poll (tests shorten it).
   * @default HEALTH_POLL_INTERVAL_MS (health-monitor.ts)
   */
  healthPollIntervalMs?: number;
}

interface NormalisedOptions {
  config: Config;
  logger: Logger;
  register: RegisterServices | undefined;
  healthComponents: readonly HealthComponent[];
  metrics: Registry;
  signal: AbortSignal | undefined;
  healthPollIntervalMs: number | undefined;
  apiTokens: readonly ApiToken[];
}

function normalise(options: StartServerOptions): NormalisedOptions {
  return {
    config: options.config,
    logger: (options.logger ?? silentLogger()).child({ component: "server" }),
    register: options.register,
    healthComponents: options.healthComponents ?? [],
    metrics: options.metrics ?? createMetricsRegistry(),
    signal: options.signal,
    healthPollIntervalMs: options.healthPollIntervalMs,
    apiTokens: options.apiTokens ?? [],
  };
}

export interface StacklServer {
  /** The bound port (the real one when the configuration asked for 0). */
  readonly port: number;
  /** Base URL for clients, e.g. `http://127.0.0.1:7443` (a wildcard listen address is shown as loopback). */
  readonly url: string;
  readonly state: ServerState;
  /** Readiness as reported by `grpc.health.v1.Health` and `/healthz`. */
  readonly health: HealthMonitor;
  /** Prometheus registry of this server. */
  readonly metrics: Registry;
  /** Calls in flight now. */
  readonly activeRequests: number;
  /**
   * Graceful shutdown: NOT_SERVING, stop accepting, GOAWAY, in-flight calls get the configured grace period, then
   * handlers are aborted (UNAVAILABLE) and connections cut. Aborting `signal` skips what is left of the grace period.
   * Idempotent: every call returns the same promise.
   */
  close(signal?: AbortSignal): Promise<void>;
}

function displayHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * The configured TLS certificate and key, read from disk (`undefined` when TLS is off). Throws `ConfigError` naming
 * STACKL_TLS_CERT or STACKL_TLS_KEY when a file cannot be read. Callers may run it early to fail before anything
 * else starts; `startServer` runs it too.
 */
export async function readTls(config: Config): Promise<{ cert: Buffer; key: Buffer } | undefined> {
  if (config.tlsCertFile === undefined || config.tlsKeyFile === undefined) return undefined;
  const read = async (file: string, variable: string): Promise<Buffer> => {
    try {
      return await readFile(file);
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new ConfigError(`${variable}: cannot read ${JSON.stringify(file)} (${reason})`, [variable], {
        cause: err,
      });
    }
  };
  return {
    cert: await read(config.tlsCertFile, "STACKL_TLS_CERT"),
    key: await read(config.tlsKeyFile, "STACKL_TLS_KEY"),
  };
}

/**
 * Starts the API server on ONE port: gRPC (h2c, or TLS with ALPN), gRPC-Web and Connect over HTTP/1.1 and HTTP/2,
 * `grpc.health.v1.Health`, gRPC reflection (v1, v1alpha), `/metrics` and `/healthz`. Resolves once the port is bound
 * and the first readiness round is done (state `running`); rejects (state `failed`) when it cannot listen.
 */
export async function startServer(options: StartServerOptions): Promise<StacklServer> {
  const opts = normalise(options);
  const { config, logger } = opts;
  let state: ServerState = "starting";
  const transition = (to: ServerState, fields: Record<string, unknown> = {}): void => {
    const from = state;
    state = to;
    const level = to === "failed" ? "error" : "info";
    logger[level]({ from, to, ...fields }, `server ${to}`);
  };
  logger.info({ from: null, to: state }, "server starting");

  const shutdown = new AbortController();
  const drain = new AbortController();
  const healthLoop = new AbortController();
  let monitor: HealthMonitor | undefined;
  const getMonitor = (): HealthMonitor => {
    if (monitor === undefined) throw new Error("health monitor used before the server was built");
    return monitor;
  };

  // Request ids: taken from `x-request-id` when sane, else generated; echoed on the response.
  const requestIds = new WeakMap<object, string>();
  const adapter = connectNodeAdapter({
    routes: (router) => {
      const served = registerRoutes(router, { register: opts.register, health: getMonitor });
      monitor = new HealthMonitor({
        components: opts.healthComponents,
        services: served.map((s) => s.typeName),
        logger,
        ...(opts.healthPollIntervalMs === undefined ? {} : { pollIntervalMs: opts.healthPollIntervalMs }),
      });
    },
    // Outermost first: logging and metrics see the final code; the default deadline wraps the error mapping so
    // that an abort it causes is mapped to DEADLINE_EXCEEDED.
    interceptors: [
      loggingInterceptor(logger),
      metricsInterceptor(opts.metrics),
      defaultDeadlineInterceptor(config.maxDeadlineMs),
      errorInterceptor(logger),
      authInterceptor(opts.apiTokens, logger),
    ],
    readMaxBytes: config.maxMessageBytes,
    writeMaxBytes: config.maxMessageBytes,
    maxTimeoutMs: config.maxDeadlineMs,
    shutdownSignal: shutdown.signal,
    binaryOptions: { recursionLimit: PROTOBUF_RECURSION_LIMIT },
    jsonOptions: { recursionLimit: PROTOBUF_RECURSION_LIMIT, ignoreUnknownFields: true },
    contextValues: (req) =>
      createContextValues()
        .set(requestIdKey, requestIds.get(req) ?? "")
        .set(drainSignalKey, drain.signal),
    fallback: httpRoutes({ metrics: opts.metrics, health: getMonitor, logger }),
  });
  const health = getMonitor();

  const handler = (req: NodeRequest, res: NodeResponse): void => {
    const given = req.headers[REQUEST_ID_HEADER];
    const id = typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    requestIds.set(req, id);
    res.setHeader(REQUEST_ID_HEADER, id);
    useSpecGrpcMessageEncoding(req, res);
    adapter(req, res);
  };

  let listener: Listener;
  let port: number;
  try {
    const tls = await readTls(config);
    listener = new Listener(handler, { host: config.host, port: config.port, tls, logger });
    try {
      port = (await listener.listen(opts.signal)).port;
    } catch (err) {
      listener.destroy();
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === "EADDRINUSE" ? "address already in use" : code === "EACCES" ? "permission denied" : code;
      throw why === undefined
        ? err
        : new Error(`cannot listen on ${config.host}:${config.port} (STACKL_HOST/STACKL_PORT): ${why}`, {
            cause: err,
          });
    }
    await health.checkOnce(healthLoop.signal);
  } catch (err) {
    transition("failed", { err });
    healthLoop.abort();
    throw err;
  }
  void health.run(healthLoop.signal);

  const url = `${tlsOn(config) ? "https" : "http"}://${displayHost(config.host)}:${port}`;
  transition("running", {
    url,
    tls: tlsOn(config),
    max_message: formatByteSize(config.maxMessageBytes),
    max_deadline: formatDuration(config.maxDeadlineMs),
    health: health.snapshot().status,
  });

  let closing: Promise<void> | undefined;
  const force = new AbortController();
  const close = (signal?: AbortSignal): Promise<void> => {
    if (signal !== undefined) {
      if (signal.aborted) force.abort();
      else signal.addEventListener("abort", () => force.abort(), { once: true });
    }
    closing ??= (async () => {
      const started = performance.now();
      transition("draining", { in_flight: listener.activeRequests, grace: formatDuration(config.shutdownGraceMs) });
      health.drain();
      drain.abort();
      listener.drain();
      const grace = refTimeout(config.shutdownGraceMs);
      let forced = false;
      try {
        await listener.idle(AbortSignal.any([grace.signal, force.signal]));
      } catch {
        forced = true;
        logger.warn(
          {
            in_flight: listener.activeRequests,
            requests: listener.activeRequestPaths().slice(0, 20),
            grace: formatDuration(config.shutdownGraceMs),
          },
          force.signal.aborted
            ? "shutdown forced; aborting calls in flight"
            : "grace period over; aborting calls in flight",
        );
        shutdown.abort(new ConnectError("the server is shutting down", Code.Unavailable));
        const flush = refTimeout(ABORT_FLUSH_MS);
        await listener.idle(flush.signal).catch(() => undefined);
        flush.clear();
      } finally {
        grace.clear();
      }
      healthLoop.abort();
      // Connections end by themselves once their calls are done and their last frames are flushed; cut the rest.
      const closeTimeout = refTimeout(CLOSE_TIMEOUT_MS);
      await listener.closed(closeTimeout.signal).catch(() => undefined);
      closeTimeout.clear();
      listener.destroy();
      transition("stopped", { forced, duration_ms: Math.round(performance.now() - started) });
    })();
    return closing;
  };
  if (opts.signal?.aborted) void close();
  else opts.signal?.addEventListener("abort", () => void close(), { once: true });

  return {
    port,
    url,
    get state() {
      return state;
    },
    health,
    metrics: opts.metrics,
    get activeRequests() {
      return listener.activeRequests;
    },
    close,
  };
}

/**
 * An AbortSignal that aborts after `ms`, backed by a timer that keeps the process alive (AbortSignal.timeout's does
 * not, so a shutdown waiting only on it could end the process half-way). `clear()` when done.
 */
function refTimeout(ms: number): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`timed out after ${ms} ms`)), ms);
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

function tlsOn(config: Config): boolean {
  return config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined;
}
