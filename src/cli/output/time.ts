/** Times and durations as the client commands print them. */
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";

/** Milliseconds since the epoch, or undefined for an unset timestamp. */
export function msOf(ts: Timestamp | undefined): number | undefined {
  return ts === undefined ? undefined : timestampMs(ts);
}

/** A compact age: `0s`, `45s`, `12m`, `3h`, `5d` (kubectl style; `2m5s` and `1h5m` under ten units). */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 10) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

/** How long ago `ts` was, relative to `now` (`-` when unset). */
export function ageOf(ts: Timestamp | undefined, now: number): string {
  const ms = msOf(ts);
  return ms === undefined ? "-" : formatAge(now - ms);
}

/** `2024-05-01T10:02:03Z` (UTC, whole seconds), `` for an unset timestamp. */
export function formatTimestamp(ts: Timestamp | undefined): string {
  const ms = msOf(ts);
  if (ms === undefined) return "";
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** `10:02:03` local time, for streamed progress lines. */
export function formatClock(ms: number): string {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

/** A duration in its shortest exact form: `150ms`, `2.5s`, `1m30s`. */
export function formatElapsed(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(Math.round(ms / 100) / 10).toString()}s`;
  return formatAge(ms);
}

/** A proto Duration as `formatElapsed` prints it (`` when unset). */
export function formatProtoDuration(d: Duration | undefined): string {
  return d === undefined ? "" : formatElapsed(durationMs(d));
}
