/** Small statistics and formatting helpers shared by the benchmarks. */

/** The `p`-th percentile (0–100) of an ascending-sorted array (nearest rank); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export interface LatencySummary {
  n: number;
  p50: number;
  p99: number;
  mean: number;
  max: number;
}

/** p50 / p99 / mean / max of durations in ms (sorts a copy). */
export function summarize(durationsMs: readonly number[]): LatencySummary {
  const s = [...durationsMs].sort((a, b) => a - b);
  const sum = s.reduce((a, b) => a + b, 0);
  return {
    n: s.length,
    p50: percentile(s, 50),
    p99: percentile(s, 99),
    mean: s.length === 0 ? Number.NaN : sum / s.length,
    max: s.length === 0 ? Number.NaN : (s[s.length - 1] as number),
  };
}

/** A rate (per second) with thousands separators and sensible precision. */
export function fmtRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return "–";
  if (perSecond >= 100) return Math.round(perSecond).toLocaleString("en-US");
  return perSecond.toFixed(1);
}

/** Milliseconds with 2–3 significant decimals. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return "–";
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  if (ms >= 1) return `${ms.toFixed(2)} ms`;
  return `${ms.toFixed(3)} ms`;
}

/** Microseconds, rounded. */
export function fmtUs(us: number): string {
  if (!Number.isFinite(us)) return "–";
  return `${Math.round(us).toLocaleString("en-US")} µs`;
}

/**
 * A ratio STACKL ÷ baseline, printed with the direction that makes it readable: for throughput a value below 1
 * means STACKL is slower; for latency a value above 1 means STACKL is slower.
 */
export function fmtRatio(stackl: number, baseline: number): string {
  if (!Number.isFinite(stackl) || !Number.isFinite(baseline) || baseline === 0) return "–";
  const r = stackl / baseline;
  return r >= 10 ? `${r.toFixed(0)}×` : r >= 1 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`;
}

/** Runs `op` sequentially until `count` runs or `seconds` elapsed; returns per-op durations and elapsed time. */
export async function runSequential(
  count: number,
  seconds: number,
  op: (i: number) => Promise<unknown>,
): Promise<{ durations: number[]; elapsedMs: number }> {
  const durations: number[] = [];
  const start = performance.now();
  const deadline = start + seconds * 1000;
  for (let i = 0; i < count && performance.now() < deadline; i++) {
    const t = performance.now();
    await op(i);
    durations.push(performance.now() - t);
  }
  return { durations, elapsedMs: performance.now() - start };
}

/**
 * Runs `op` with `concurrency` callers in a closed loop until `count` runs were started or `seconds` elapsed;
 * returns per-op durations and elapsed time. The first error stops every caller and is rethrown.
 */
export async function runConcurrent(
  concurrency: number,
  count: number,
  seconds: number,
  op: (i: number) => Promise<unknown>,
): Promise<{ durations: number[]; elapsedMs: number }> {
  const durations: number[] = [];
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let next = 0;
  let failed: unknown;
  const caller = async (): Promise<void> => {
    while (failed === undefined && next < count && performance.now() < deadline) {
      const i = next++;
      const t = performance.now();
      try {
        await op(i);
      } catch (err) {
        failed ??= err;
        return;
      }
      durations.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  if (failed !== undefined) throw failed;
  return { durations, elapsedMs: performance.now() - start };
}
