/**
 * CPU time of processes, read from /proc (Linux). CPU per operation is much less sensitive to other tenants of a
 * shared machine than operations per second, so the benchmarks report both.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on every mainstream Linux). */
const TICKS_PER_SECOND = 100;

interface Stat {
  ppid: number;
  /** utime + stime, ms */
  selfMs: number;
  /** cutime + cstime (children already waited for), ms */
  childrenMs: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime is field 14 → index 11.
  const num = (field: number) => Number(fields[field - 3]);
  const tick = 1000 / TICKS_PER_SECOND;
  return {
    ppid: num(4),
    selfMs: (num(14) + num(15)) * tick,
    childrenMs: (num(16) + num(17)) * tick,
  };
}

/** CPU ms used so far by `pid` itself (0 if it is gone). */
export function cpuMs(pid: number): number {
  return readStat(pid)?.selfMs ?? 0;
}

/**
 * CPU ms used so far by `pid` and its direct children, live or exited (a PostgreSQL postmaster and its backends).
 * Exited children count only once the parent has waited for them, which the postmaster does at once.
 */
export function treeCpuMs(pid: number): number {
  const root = readStat(pid);
  if (root === undefined) return 0;
  let total = root.selfMs + root.childrenMs;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const s = readStat(Number(entry));
    if (s !== undefined && s.ppid === pid) total += s.selfMs;
  }
  return total;
}

/** CPU ms used so far by this process (user + system). */
export function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** A named set of CPU counters, snapshotted before and after a phase. */
export type CpuSources = Record<string, () => number>;

export class CpuMeter {
  constructor(private readonly sources: CpuSources) {}

  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, read] of Object.entries(this.sources)) out[name] = read();
    return out;
  }

  /** CPU ms per source between two snapshots. */
  static delta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of Object.keys(after)) out[name] = (after[name] ?? 0) - (before[name] ?? 0);
    return out;
  }
}
