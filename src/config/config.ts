import { hostname } from "node:os";
import path from "node:path";
import { z } from "zod";
import { formatByteSize, parseByteSize } from "./byte-size.js";
import { ConfigError } from "./config-error.js";
import { formatDuration, parseDuration } from "./duration.js";

/**
 * STACKL's process configuration: `STACKL_*` environment variables, overridden by command-line flags, validated once
 * at start-up by one zod schema. A bad value throws a `ConfigError` naming the variable (and the flag when the value
 * came from one); nothing starts.
 */

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The validated, normalised configuration. Frozen. */
export interface Config {
  /**
   * Address the API server listens on.
   * @default "127.0.0.1"
   */
  readonly host: string;
  /**
   * Port of the one listener (gRPC, gRPC-Web, Connect, /metrics, /healthz). 0 picks a free port.
   * @default 7443
   */
  readonly port: number;
  /**
   * PEM certificate (chain) file. TLS (with ALPN h2 + http/1.1) is on when both this and `tlsKeyFile` are set.
   * @default undefined (plaintext: h2c and HTTP/1.1)
   */
  readonly tlsCertFile: string | undefined;
  /**
   * PEM private key file for `tlsCertFile`.
   * @default undefined
   */
  readonly tlsKeyFile: string | undefined;
  /**
   * pino log level.
   * @default "info"
   */
  readonly logLevel: LogLevel;
  /**
   * PostgreSQL connection URL (`postgres://…`).
   * @default undefined (the embedded PGlite database under `dataDir`)
   */
  readonly databaseUrl: string | undefined;
  /**
   * Directory for local state (the embedded database). Absolute after normalisation.
   * @default "./.stackl/data" (resolved against the working directory)
   */
  readonly dataDir: string;
  /**
   * NATS server URL(s), comma-separated (`nats://…`, `tls://…`).
   * @default undefined (the in-process bus)
   */
  readonly natsUrl: string | undefined;
  /**
   * Tasks one worker process runs at once.
   * @default 8
   */
  readonly workerConcurrency: number;
  /**
   * Largest message the API accepts or sends, per message (not per stream).
   * @default 4 MiB
   */
  readonly maxMessageBytes: number;
  /**
   * Largest deadline a client may ask for; also the deadline of unary calls that carry none.
   * @default 5 min
   */
  readonly maxDeadlineMs: number;
  /**
   * Time in-flight calls get to finish on shutdown before they are aborted.
   * @default 10 s
   */
  readonly shutdownGraceMs: number;
  /**
   * Name of this server replica (logs, agent stream ownership).
   * @default the host name
   */
  readonly replicaName: string;
}

export type ConfigKey = keyof Config;

/** How one setting is spelled in the environment and on the command line. */
export interface ConfigSetting {
  readonly env: string;
  /** commander flag spec, e.g. `--port <port>`. */
  readonly flag: string;
  readonly help: string;
  /** Default, as shown in `--help`. */
  readonly defaultText?: string;
  /** The value may hold credentials: never echo it back unredacted. */
  readonly secret?: boolean;
}

export const DEFAULT_PORT = 7443;
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_DATA_DIR = "./.stackl/data";
export const DEFAULT_WORKER_CONCURRENCY = 8;
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_DEADLINE_MS = 5 * 60_000;
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

/** Every setting, in `--help` order. */
export const configSettings: { readonly [K in ConfigKey]: ConfigSetting } = {
  host: { env: "STACKL_HOST", flag: "--host <host>", help: "listen address", defaultText: DEFAULT_HOST },
  port: {
    env: "STACKL_PORT",
    flag: "--port <port>",
    help: "listen port (0 = any free port)",
    defaultText: String(DEFAULT_PORT),
  },
  tlsCertFile: {
    env: "STACKL_TLS_CERT",
    flag: "--tls-cert <file>",
    help: "PEM certificate; TLS when set with --tls-key",
  },
  tlsKeyFile: { env: "STACKL_TLS_KEY", flag: "--tls-key <file>", help: "PEM private key for --tls-cert" },
  logLevel: {
    env: "STACKL_LOG_LEVEL",
    flag: "--log-level <level>",
    help: `log level (${LOG_LEVELS.join(", ")})`,
    defaultText: "info",
  },
  databaseUrl: {
    env: "STACKL_DATABASE_URL",
    flag: "--database-url <url>",
    help: "PostgreSQL URL; empty = embedded PGlite under --data-dir",
    secret: true,
  },
  dataDir: {
    env: "STACKL_DATA_DIR",
    flag: "--data-dir <dir>",
    help: "local state directory",
    defaultText: DEFAULT_DATA_DIR,
  },
  natsUrl: {
    env: "STACKL_NATS_URL",
    flag: "--nats-url <urls>",
    help: "NATS URL(s), comma-separated; empty = in-process bus",
    secret: true,
  },
  workerConcurrency: {
    env: "STACKL_WORKER_CONCURRENCY",
    flag: "--worker-concurrency <n>",
    help: "tasks run at once per worker process",
    defaultText: String(DEFAULT_WORKER_CONCURRENCY),
  },
  maxMessageBytes: {
    env: "STACKL_MAX_MESSAGE_BYTES",
    flag: "--max-message-bytes <size>",
    help: "largest API message (e.g. 4MiB)",
    defaultText: formatByteSize(DEFAULT_MAX_MESSAGE_BYTES),
  },
  maxDeadlineMs: {
    env: "STACKL_MAX_DEADLINE",
    flag: "--max-deadline <duration>",
    help: "largest client deadline; default deadline of unary calls without one",
    defaultText: formatDuration(DEFAULT_MAX_DEADLINE_MS),
  },
  shutdownGraceMs: {
    env: "STACKL_SHUTDOWN_GRACE",
    flag: "--shutdown-grace <duration>",
    help: "time in-flight calls get to finish on SIGTERM",
    defaultText: formatDuration(DEFAULT_SHUTDOWN_GRACE_MS),
  },
  replicaName: {
    env: "STACKL_REPLICA_NAME",
    flag: "--replica-name <name>",
    help: "name of this replica",
    defaultText: "host name",
  },
};

// ---------------------------------------------------------------------------------------------------------
// The schema: raw strings in, typed values out. Every failure message reads "expected …"; `loadConfig` adds the
// variable name and the offending value.

function parsed<T>(expected: string, parse: (text: string) => T | undefined) {
  return z.string().transform((text, ctx): T => {
    const value = parse(text.trim());
    if (value === undefined) {
      ctx.issues.push({ code: "custom", message: `expected ${expected}`, input: text });
      return z.NEVER;
    }
    return value;
  });
}

function integer(min: number, max: number) {
  return parsed(`an integer ${min}-${max}`, (s) => {
    if (!/^\d+$/.test(s)) return undefined;
    const n = Number(s);
    return n >= min && n <= max ? n : undefined;
  });
}

function duration(minMs: number, maxMs: number) {
  return parsed(`a duration ${formatDuration(minMs)}-${formatDuration(maxMs)} such as 500ms, 10s, 5m or 1h30m`, (s) => {
    const ms = parseDuration(s);
    return ms !== undefined && ms >= minMs && ms <= maxMs ? ms : undefined;
  });
}

function byteSize(min: number, max: number) {
  return parsed(`a size ${formatByteSize(min)}-${formatByteSize(max)} such as 4MiB, 512KiB or 4194304`, (s) => {
    const n = parseByteSize(s);
    return n !== undefined && n >= min && n <= max ? n : undefined;
  });
}

function urlList(expected: string, protocols: readonly string[]) {
  return parsed(expected, (s) => {
    const parts = s.split(",").map((p) => p.trim());
    for (const p of parts) {
      if (!URL.canParse(p) || !protocols.includes(new URL(p).protocol)) return undefined;
    }
    return parts.join(",");
  });
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6 = /^[0-9A-Fa-f:.]+$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const envSchema = z
  .object({
    STACKL_HOST: parsed("a host name or IP address", (s) =>
      HOSTNAME.test(s) || (s.includes(":") && IPV6.test(s)) ? s : undefined,
    ).default(DEFAULT_HOST),
    STACKL_PORT: integer(0, 65535).default(DEFAULT_PORT),
    STACKL_TLS_CERT: parsed("a file path", (s) => (s === "" ? undefined : s)).optional(),
    STACKL_TLS_KEY: parsed("a file path", (s) => (s === "" ? undefined : s)).optional(),
    STACKL_LOG_LEVEL: parsed(`one of ${LOG_LEVELS.join(", ")}`, (s) =>
      (LOG_LEVELS as readonly string[]).includes(s) ? (s as LogLevel) : undefined,
    ).default("info"),
    STACKL_DATABASE_URL: urlList("a postgres:// URL (or empty for the embedded database)", ["postgres:", "postgresql:"])
      .refine((s) => !s.includes(","), { message: "expected a single postgres:// URL" })
      .optional(),
    STACKL_DATA_DIR: parsed("a directory path", (s) => (s === "" ? undefined : path.resolve(s))).default(() =>
      path.resolve(DEFAULT_DATA_DIR),
    ),
    STACKL_NATS_URL: urlList("nats:// or tls:// URL(s), comma-separated (or empty for the in-process bus)", [
      "nats:",
      "tls:",
    ]).optional(),
    STACKL_WORKER_CONCURRENCY: integer(1, 1024).default(DEFAULT_WORKER_CONCURRENCY),
    STACKL_MAX_MESSAGE_BYTES: byteSize(1024, 64 * 1024 * 1024).default(DEFAULT_MAX_MESSAGE_BYTES),
    STACKL_MAX_DEADLINE: duration(1_000, 24 * 3_600_000).default(DEFAULT_MAX_DEADLINE_MS),
    STACKL_SHUTDOWN_GRACE: duration(0, 10 * 60_000).default(DEFAULT_SHUTDOWN_GRACE_MS),
    STACKL_REPLICA_NAME: parsed("a name of letters, digits, '.', '_' or '-' (at most 63)", (s) =>
      NAME.test(s) ? s : undefined,
    ).default(() => defaultReplicaName()),
  })
  .superRefine((v, ctx) => {
    if ((v.STACKL_TLS_CERT === undefined) !== (v.STACKL_TLS_KEY === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [v.STACKL_TLS_CERT === undefined ? "STACKL_TLS_CERT" : "STACKL_TLS_KEY"],
        message: "expected both STACKL_TLS_CERT and STACKL_TLS_KEY to be set, or neither",
      });
    }
  });

function defaultReplicaName(): string {
  const h = hostname()
    .replace(/[^A-Za-z0-9._-]/g, "-")
    .slice(0, 63);
  return NAME.test(h) ? h : "stackl";
}

const ENV_TO_KEY = new Map<string, ConfigKey>(
  (Object.entries(configSettings) as [ConfigKey, ConfigSetting][]).map(([k, s]) => [s.env, k]),
);

export interface LoadConfigInput {
  /** @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /** Command-line values (raw text, as typed); they override the environment. */
  flags?: Partial<Record<ConfigKey, string | number | undefined>>;
}

/**
 * Reads and validates the configuration. Empty values count as unset. Throws `ConfigError` on the first bad value
 * (all bad values are listed, one per line, when there are several).
 */
export function loadConfig(input: LoadConfigInput = {}): Config {
  const env = input.env ?? process.env;
  const flags = input.flags ?? {};
  const raw: Record<string, string> = {};
  const fromFlag = new Set<string>();
  for (const [key, setting] of Object.entries(configSettings) as [ConfigKey, ConfigSetting][]) {
    const flagValue = flags[key];
    const envValue = env[setting.env];
    if (flagValue !== undefined && String(flagValue) !== "") {
      raw[setting.env] = String(flagValue);
      fromFlag.add(setting.env);
    } else if (envValue !== undefined && envValue !== "") {
      raw[setting.env] = envValue;
    }
  }
  const result = envSchema.safeParse(raw);
  if (!result.success) {
    const lines: string[] = [];
    const variables: string[] = [];
    for (const issue of result.error.issues) {
      const envName = String(issue.path[0] ?? "");
      const key = ENV_TO_KEY.get(envName);
      const setting = key === undefined ? undefined : configSettings[key];
      const label =
        setting !== undefined && fromFlag.has(envName) ? `${setting.flag.split(" ")[0]} (${envName})` : envName;
      const value = raw[envName];
      const shown = value === undefined ? "" : `, got ${JSON.stringify(setting?.secret ? redactUrl(value) : value)}`;
      lines.push(`${label}: ${issue.message}${shown}`);
      variables.push(envName);
    }
    throw new ConfigError(lines.join("\n"), variables);
  }
  const v = result.data;
  return Object.freeze({
    host: v.STACKL_HOST,
    port: v.STACKL_PORT,
    tlsCertFile: v.STACKL_TLS_CERT,
    tlsKeyFile: v.STACKL_TLS_KEY,
    logLevel: v.STACKL_LOG_LEVEL,
    databaseUrl: v.STACKL_DATABASE_URL,
    dataDir: v.STACKL_DATA_DIR,
    natsUrl: v.STACKL_NATS_URL,
    workerConcurrency: v.STACKL_WORKER_CONCURRENCY,
    maxMessageBytes: v.STACKL_MAX_MESSAGE_BYTES,
    maxDeadlineMs: v.STACKL_MAX_DEADLINE,
    shutdownGraceMs: v.STACKL_SHUTDOWN_GRACE,
    replicaName: v.STACKL_REPLICA_NAME,
  });
}

/** The configuration as safe to log: credentials in URLs replaced by `***`, sizes and durations in human form. */
export function describeConfig(config: Config): Record<string, string | number | undefined> {
  return {
    host: config.host,
    port: config.port,
    tls: config.tlsCertFile === undefined ? "off" : "on",
    log_level: config.logLevel,
    database: config.databaseUrl === undefined ? "embedded (PGlite)" : redactUrl(config.databaseUrl),
    data_dir: config.dataDir,
    bus: config.natsUrl === undefined ? "in-process" : redactUrl(config.natsUrl),
    worker_concurrency: config.workerConcurrency,
    max_message: formatByteSize(config.maxMessageBytes),
    max_deadline: formatDuration(config.maxDeadlineMs),
    shutdown_grace: formatDuration(config.shutdownGraceMs),
    replica: config.replicaName,
  };
}

/** Replaces the password (or token) in every `scheme://user:password@host` of `text` with `***`. */
export function redactUrl(text: string): string {
  return text.replace(/(\/\/[^/@:,\s]*):[^/@,\s]*@/g, "$1:***@").replace(/(\/\/)([^/@:,\s]+)@/g, "$1***@");
}
