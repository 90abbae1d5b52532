/** Durations in configuration: one or more `<number><unit>` parts, e.g. `500ms`, `10s`, `5m`, `1h30m`. */

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
type Unit = keyof typeof UNIT_MS;

const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/** Milliseconds in `text`, or `undefined` when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (!WHOLE.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(PART)) {
    total += Number(m[1]) * UNIT_MS[m[2] as Unit];
  }
  return Math.round(total);
}

/** A short human form: `250ms`, `10s`, `5m`, `1h30m`. */
export function formatDuration(ms: number): string {
  if (ms < 1_000 || ms % 1_000 !== 0) return `${ms}ms`;
  let s = ms / 1_000;
  const h = Math.floor(s / 3_600);
  s -= h * 3_600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h > 0 ? `${h}h` : ""}${m > 0 ? `${m}m` : ""}${s > 0 ? `${s}s` : ""}`;
}
