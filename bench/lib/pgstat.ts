/**
 * Statements executed per operation, from pg_stat_statements (enabled by startBenchPostgres). Unlike timings these
 * counts do not depend on the load of the machine: they show how many round trips each operation costs.
 */
import type pg from "pg";

/** Marker the benchmarks put in their own bookkeeping queries, so they are not counted. */
export const BENCH_MARK = "/* bench */";

export interface StatementSnapshot {
  /** queryid → calls, total execution ms, and the text */
  rows: Map<string, { query: string; calls: number; ms: number }>;
}

export async function snapshotStatements(db: pg.Pool | pg.Client): Promise<StatementSnapshot> {
  const res = await db.query<{ queryid: string; query: string; calls: string; ms: number }>(
    `${BENCH_MARK} SELECT s.queryid::text AS queryid, s.query, s.calls, s.total_exec_time AS ms
       FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
      WHERE d.datname = current_database() AND s.query NOT LIKE '%/* bench */%'`,
  );
  return { rows: new Map(res.rows.map((r) => [r.queryid, { query: r.query, calls: Number(r.calls), ms: r.ms }])) };
}

export interface StatementDelta {
  query: string;
  calls: number;
  ms: number;
}

/**
 * Statements run between two snapshots, most frequent first, grouped by text with literal numbers blanked (utility
 * statements such as `SET LOCAL statement_timeout = 29987` get one entry per distinct text in pg_stat_statements;
 * those one-call entries may also be evicted, so their counts are a lower bound).
 */
export function statementDelta(before: StatementSnapshot, after: StatementSnapshot): StatementDelta[] {
  const grouped = new Map<string, StatementDelta>();
  for (const [id, a] of after.rows) {
    const b = before.rows.get(id);
    const calls = a.calls - (b?.calls ?? 0);
    if (calls <= 0) continue;
    const key = shortSql(a.query, 10_000).replace(/\b\d+\b/g, "N");
    const e = grouped.get(key) ?? { query: key, calls: 0, ms: 0 };
    e.calls += calls;
    e.ms += a.ms - (b?.ms ?? 0);
    grouped.set(key, e);
  }
  return [...grouped.values()].sort((x, y) => y.calls - x.calls);
}

/** One line of SQL, shortened. */
export function shortSql(query: string, max = 90): string {
  const one = query.replace(/\s+/g, " ").trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}
