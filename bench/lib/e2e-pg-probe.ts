/**
 * PostgreSQL probes for bench/e2e.ts's diagnostic (profiled) run: what the client backends wait on (sampled from
 * pg_stat_activity), CPU by backend kind (from /proc), and planning vs execution time per statement
 * (pg_stat_statements with track_planning). They add load of their own, so they only run in the profiled run.
 */
import { readdirSync, readFileSync } from "node:fs";
import type pg from "pg";
import { BENCH_MARK, shortSql } from "./pgstat.js";

/** Samples `wait_event_type:wait_event` of the active client backends every `everyMs` until stopped. */
export class WaitSampler {
  readonly counts = new Map<string, number>();
  samples = 0;
  /**
   * Backends waiting for the lock on the database object that PostgreSQL's NOTIFY takes in PreCommit_Notify and
   * holds until the commit is flushed (one notifying transaction commits at a time, cluster-wide per database).
   */
  notifyLockWaiters = 0;
  private running = true;
  private readonly done: Promise<void>;

  constructor(db: pg.Pool, appPrefix: string, everyMs = 5) {
    this.done = (async () => {
      while (this.running) {
        const { rows } = await db.query<{ w: string; n: number }>(
          `${BENCH_MARK} SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU (no wait event)') AS w,
                  count(*)::int AS n
             FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()
              AND application_name LIKE $1
            GROUP BY 1`,
          [`${appPrefix}%`],
        );
        const { rows: locks } = await db.query<{ n: number }>(
          `${BENCH_MARK} SELECT count(*)::int AS n FROM pg_locks
            WHERE locktype = 'object' AND classid = 'pg_database'::regclass AND NOT granted`,
        );
        this.samples++;
        this.notifyLockWaiters += locks[0]?.n ?? 0;
        for (const r of rows) this.counts.set(r.w, (this.counts.get(r.w) ?? 0) + r.n);
        await new Promise((resolve) => setTimeout(resolve, everyMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }

  /** [wait, mean active backends in that wait, share of active backend-samples] rows, largest first. */
  rows(): [string, string, string][] {
    const total = [...this.counts.values()].reduce((a, b) => a + b, 0);
    return [...this.counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([w, n]) => [w, (n / this.samples).toFixed(2), `${((n / total) * 100).toFixed(1)} %`]);
  }

  /** Mean number of active client backends. */
  get meanActive(): number {
    return [...this.counts.values()].reduce((a, b) => a + b, 0) / Math.max(1, this.samples);
  }
}

function procCpuMs(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return undefined;
  }
}

/** CPU ms of the postmaster's children grouped by kind (client backends by application_name). */
export async function pgCpuByKind(db: pg.Pool, postmasterPid: number): Promise<Map<string, number>> {
  const { rows } = await db.query<{ pid: number; kind: string }>(
    `${BENCH_MARK} SELECT pid, CASE WHEN backend_type = 'client backend'
                                   THEN 'client: ' || coalesce(nullif(application_name, ''), '?')
                                   ELSE backend_type END AS kind
       FROM pg_stat_activity`,
  );
  const kindOf = new Map(rows.map((r) => [r.pid, r.kind]));
  const out = new Map<string, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let ppid: number;
    try {
      const t = readFileSync(`/proc/${pid}/stat`, "utf8");
      ppid = Number(t.slice(t.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      continue;
    }
    if (ppid !== postmasterPid) continue;
    const ms = procCpuMs(pid);
    if (ms === undefined) continue;
    const kind = kindOf.get(pid) ?? "other (exited or not in pg_stat_activity)";
    out.set(`${pid}\u0000${kind}`, ms);
  }
  return out;
}

/** CPU ms per kind between two pgCpuByKind snapshots (processes present in both, or new ones). */
export function pgCpuDelta(before: Map<string, number>, after: Map<string, number>): [string, number][] {
  const byKind = new Map<string, number>();
  for (const [key, ms] of after) {
    const kind = key.split("\u0000")[1] as string;
    const d = ms - (before.get(key) ?? 0);
    byKind.set(kind, (byKind.get(kind) ?? 0) + d);
  }
  return [...byKind.entries()].filter(([, ms]) => ms > 0).sort((a, b) => b[1] - a[1]);
}

export interface PlanStat {
  query: string;
  calls: number;
  planMs: number;
  execMs: number;
}

export async function setTrackPlanning(db: pg.Pool, on: boolean): Promise<void> {
  await db.query(`ALTER SYSTEM SET pg_stat_statements.track_planning = ${on ? "on" : "off"}`);
  await db.query("SELECT pg_reload_conf()");
  await new Promise((resolve) => setTimeout(resolve, 300));
}

export async function planSnapshot(db: pg.Pool): Promise<Map<string, PlanStat>> {
  const { rows } = await db.query<{ id: string; query: string; calls: string; plan: number; exec: number }>(
    `${BENCH_MARK} SELECT s.queryid::text AS id, s.query, s.calls, s.total_plan_time AS plan,
            s.total_exec_time AS exec
       FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
      WHERE d.datname = current_database() AND s.query NOT LIKE '%/* bench */%'`,
  );
  return new Map(rows.map((r) => [r.id, { query: r.query, calls: Number(r.calls), planMs: r.plan, execMs: r.exec }]));
}

export function planDelta(before: Map<string, PlanStat>, after: Map<string, PlanStat>): PlanStat[] {
  const out: PlanStat[] = [];
  for (const [id, a] of after) {
    const b = before.get(id);
    const calls = a.calls - (b?.calls ?? 0);
    if (calls <= 0) continue;
    out.push({
      query: shortSql(a.query, 80),
      calls,
      planMs: a.planMs - (b?.planMs ?? 0),
      execMs: a.execMs - (b?.execMs ?? 0),
    });
  }
  return out.sort((x, y) => y.planMs + y.execMs - (x.planMs + x.execMs));
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of the row-picking core of STACKL's claim statement (JobRepo.claim, CTE `c`) on the
 * live table, in a transaction that is rolled back, plus the table's live/dead tuple counts: shows whether the
 * planner reaches the pending jobs through the partial index or walks the job history.
 */
export async function claimPlan(db: pg.Pool, agent: string, pool: string, tools: string[]): Promise<string> {
  const client = await db.connect();
  try {
    const stats = await client.query<{ live: string; dead: string; vac: string | null; an: string | null }>(
      `${BENCH_MARK} SELECT n_live_tup AS live, n_dead_tup AS dead,
              greatest(last_vacuum, last_autovacuum)::text AS vac, greatest(last_analyze, last_autoanalyze)::text AS an
         FROM pg_stat_user_tables WHERE relname = 'jobs'`,
    );
    await client.query("BEGIN");
    const { rows } = await client.query<{ "QUERY PLAN": string }>(
      `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT id, created_at FROM jobs
        WHERE state = 'pending' AND target = ANY($1::text[]) AND tool = ANY($2::text[])
          AND cancel_requested_at IS NULL AND NOT (id = ANY($3::text[]))
        ORDER BY created_at, id LIMIT 16 FOR UPDATE SKIP LOCKED`,
      [[agent, pool], tools, []],
    );
    await client.query("ROLLBACK");
    const s = stats.rows[0];
    return [
      `jobs table: ${s?.live ?? "?"} live and ${s?.dead ?? "?"} dead tuples; last vacuum ${s?.vac ?? "never"}, ` +
        `last analyze ${s?.an ?? "never"}.`,
      "",
      "```",
      ...rows.map((r) => r["QUERY PLAN"]),
      "```",
    ].join("\n");
  } finally {
    client.release();
  }
}
