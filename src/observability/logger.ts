import { type DestinationStream, type Logger, pino } from "pino";
import type { LogLevel } from "../config/config.js";

export type { Logger };

/**
 * Keys whose values never reach a log line, wherever they appear up to two levels deep (tokens, credentials,
 * secrets, authorization headers). Secret *references* are fine to log; resolved values are not.
 */
export const REDACTED_KEYS = [
  "token",
  "tokens",
  "password",
  "passwd",
  "secret",
  "secrets",
  "credential",
  "credentials",
  "authorization",
  "cookie",
  "apiKey",
  "api_key",
  "privateKey",
  "private_key",
  "jobToken",
  "job_token",
  "enrollmentToken",
  "enrollment_token",
  "agentCredential",
  "agent_credential",
] as const;

export const REDACT_PATHS: readonly string[] = [
  ...REDACTED_KEYS,
  ...REDACTED_KEYS.map((k) => `*.${k}`),
  ...REDACTED_KEYS.map((k) => `*.*.${k}`),
];

export interface LoggerOptions {
  /**
   * Minimum level written.
   * @default "info"
   */
  level?: LogLevel;
  /**
   * Where JSON lines go.
   * @default process.stdout (synchronous-safe pino default)
   */
  destination?: DestinationStream;
  /**
   * Fields on every line (e.g. `{ replica: "a" }`).
   * @default {}
   */
  base?: Record<string, unknown>;
}

/**
 * The process logger: pino JSON lines with `time` in ISO form, `level` as a label, credentials redacted.
 * Components take `logger.child({ component: "…" })`.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? "info",
      base: { service: "stackl", ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
      serializers: { err: pino.stdSerializers.err },
    },
    options.destination,
  );
}

/** A logger that writes nothing (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
