import { type DestinationStream, type Level, type Logger, pino } from "pino";

/** Paths never written to a log line (tokens and credentials), at the top level and one level down. */
const REDACT = ["token", "enrollment_token", "agent_credential", "credential", "job_token", "secret", "secrets"];

export interface AgentLoggerOptions {
  /** Agent name, on every line as `agent`. */
  agent: string;
  /** @default "info" */
  level?: Level;
  /** @default stdout */
  destination?: DestinationStream;
}

/** pino JSON lines: ISO `time`, `level` as a label, `agent` on every line; job lines add `job` and `epoch`. */
export function createAgentLogger(options: AgentLoggerOptions): Logger {
  return pino(
    {
      level: options.level ?? "info",
      base: { agent: options.agent },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT, ...REDACT.map((k) => `*.${k}`)], censor: "[redacted]" },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
