import { ConfigError } from "./config-error.js";
import { formatDuration, parseDuration } from "./duration.js";

/**
 * Settings of the task system (workers, relay, sweeper), from `STACKL_*` variables, validated at start-up. The
 * defaults follow DESIGN section 6; tests shorten them.
 */
export interface TaskConfig {
  /** Worker lease and JetStream ack wait (STACKL_TASK_LEASE). @default 30 s */
  readonly leaseMs: number;
  /** Deliveries per message before a failing task ends with max_deliver exhausted (STACKL_TASK_MAX_DELIVER). @default 5 */
  readonly maxDeliver: number;
  /** Retry backoff base for retryable failures (STACKL_TASK_RETRY_BASE). @default 1 s */
  readonly retryBaseMs: number;
  /** Retry backoff cap (STACKL_TASK_RETRY_CAP). @default 30 s */
  readonly retryCapMs: number;
  /** Sweeper period (STACKL_SWEEP_PERIOD). @default 10 s */
  readonly sweepPeriodMs: number;
  /** Pending tasks whose delivery is older than this are published again (STACKL_REPUBLISH_AFTER). @default 60 s */
  readonly republishAfterMs: number;
  /** Work queue consumed by `stackl worker` (STACKL_WORK_QUEUE). @default "default" */
  readonly queue: string;
}

interface Setting {
  env: string;
  defaultMs?: number;
  min: number;
  max: number;
  integer?: boolean;
}

const SETTINGS = {
  leaseMs: { env: "STACKL_TASK_LEASE", defaultMs: 30_000, min: 500, max: 3_600_000 },
  maxDeliver: { env: "STACKL_TASK_MAX_DELIVER", defaultMs: 5, min: 1, max: 100, integer: true },
  retryBaseMs: { env: "STACKL_TASK_RETRY_BASE", defaultMs: 1_000, min: 1, max: 3_600_000 },
  retryCapMs: { env: "STACKL_TASK_RETRY_CAP", defaultMs: 30_000, min: 1, max: 3_600_000 },
  sweepPeriodMs: { env: "STACKL_SWEEP_PERIOD", defaultMs: 10_000, min: 100, max: 3_600_000 },
  republishAfterMs: { env: "STACKL_REPUBLISH_AFTER", defaultMs: 60_000, min: 100, max: 86_400_000 },
} as const satisfies Record<string, Setting>;

const QUEUE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function loadTaskConfig(env: Readonly<Record<string, string | undefined>> = process.env): TaskConfig {
  const out: Record<string, number> = {};
  for (const [key, s] of Object.entries(SETTINGS) as [keyof typeof SETTINGS, Setting][]) {
    const raw = env[s.env];
    if (raw === undefined || raw.trim() === "") {
      out[key] = s.defaultMs as number;
      continue;
    }
    const value = s.integer ? (/^\d+$/.test(raw.trim()) ? Number(raw.trim()) : undefined) : parseDuration(raw);
    if (value === undefined || value < s.min || value > s.max) {
      const expected = s.integer
        ? `an integer ${s.min}-${s.max}`
        : `a duration ${formatDuration(s.min)}-${formatDuration(s.max)} such as 500ms, 10s or 5m`;
      throw new ConfigError(`${s.env}: expected ${expected}, got ${JSON.stringify(raw)}`, [s.env]);
    }
    out[key] = value;
  }
  const queue = env.STACKL_WORK_QUEUE?.trim() || "default";
  if (!QUEUE.test(queue)) {
    throw new ConfigError(
      `STACKL_WORK_QUEUE: expected a name of letters, digits, '.', '_' or '-' (at most 63), got ${JSON.stringify(queue)}`,
      ["STACKL_WORK_QUEUE"],
    );
  }
  return Object.freeze({ ...(out as Omit<TaskConfig, "queue">), queue });
}
