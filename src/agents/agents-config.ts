import { ConfigError } from "../config/config-error.js";
import { formatDuration, parseDuration } from "../config/duration.js";

/**
 * Settings of agent sessions and jobs, from `STACKL_*` variables, validated at start-up. The defaults follow DESIGN
 * section 6 (heartbeat 5 s, disconnected after 15 s, `lost_after` 5 min); tests shorten them.
 */
export interface AgentsConfig {
  /** Welcome.heartbeat_interval; also the period heartbeats are flushed to the database (STACKL_AGENT_HEARTBEAT). @default 5 s */
  readonly heartbeatMs: number;
  /** A stream silent this long is ended and the agent disconnected (STACKL_AGENT_DISCONNECT_AFTER). @default 15 s */
  readonly disconnectAfterMs: number;
  /** Default job `lost_after` (STACKL_JOB_LOST_AFTER). @default 5 min */
  readonly lostAfterMs: number;
  /** Default job timeout when neither the spec nor the invocation sets one (STACKL_JOB_TIMEOUT). @default 1 h */
  readonly jobTimeoutMs: number;
  /**
   * Connected agents whose replica recorded no heartbeat for this long are disconnected by the sweeper (their
   * replica died). Not configurable: 2 × disconnect_after.
   */
  readonly staleAfterMs: number;
}

interface Setting {
  env: string;
  defaultMs: number;
  min: number;
  max: number;
}

const SETTINGS = {
  heartbeatMs: { env: "STACKL_AGENT_HEARTBEAT", defaultMs: 5_000, min: 50, max: 600_000 },
  disconnectAfterMs: { env: "STACKL_AGENT_DISCONNECT_AFTER", defaultMs: 15_000, min: 150, max: 3_600_000 },
  lostAfterMs: { env: "STACKL_JOB_LOST_AFTER", defaultMs: 300_000, min: 1_000, max: 86_400_000 },
  jobTimeoutMs: { env: "STACKL_JOB_TIMEOUT", defaultMs: 3_600_000, min: 1_000, max: 7 * 86_400_000 },
} as const satisfies Record<string, Setting>;

/** Bounds of a job's `lost_after` given in its spec. */
export const MIN_LOST_AFTER_MS = 1_000;
export const MAX_LOST_AFTER_MS = 86_400_000;

export function loadAgentsConfig(env: Readonly<Record<string, string | undefined>> = process.env): AgentsConfig {
  const out: Record<string, number> = {};
  for (const [key, s] of Object.entries(SETTINGS) as [keyof typeof SETTINGS, Setting][]) {
    const raw = env[s.env];
    if (raw === undefined || raw.trim() === "") {
      out[key] = s.defaultMs;
      continue;
    }
    const value = parseDuration(raw);
    if (value === undefined || value < s.min || value > s.max) {
      throw new ConfigError(
        `${s.env}: expected a duration ${formatDuration(s.min)}-${formatDuration(s.max)} such as 500ms, 10s or 5m, ` +
          `got ${JSON.stringify(raw)}`,
        [s.env],
      );
    }
    out[key] = value;
  }
  const cfg = out as Omit<AgentsConfig, "staleAfterMs">;
  if (cfg.disconnectAfterMs < 2 * cfg.heartbeatMs) {
    throw new ConfigError(
      `STACKL_AGENT_DISCONNECT_AFTER (${formatDuration(cfg.disconnectAfterMs)}) must be at least twice ` +
        `STACKL_AGENT_HEARTBEAT (${formatDuration(cfg.heartbeatMs)})`,
      ["STACKL_AGENT_DISCONNECT_AFTER", "STACKL_AGENT_HEARTBEAT"],
    );
  }
  return Object.freeze({ ...cfg, staleAfterMs: 2 * cfg.disconnectAfterMs });
}
