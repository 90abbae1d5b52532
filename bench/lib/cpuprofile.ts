/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): self time by function and by area (npm package, STACKL
 * source directory, Node internals, GC), as shares of the busy (non-idle) time.
 */
import { readFileSync } from "node:fs";
import { markdownTable } from "./table.js";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  /** Sampled time, ms. */
  totalMs: number;
  /** Non-idle time, ms. */
  busyMs: number;
  functions: { name: string; where: string; area: string; ms: number }[];
  areas: { area: string; ms: number }[];
}

/** Which package, STACKL directory or runtime part a frame belongs to. */
export function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === "") {
    if (functionName === "(garbage collector)") return "GC";
    if (functionName === "(idle)") return "(idle)";
    if (functionName === "(program)") return "(program: native, unattributed)";
    return `native: ${functionName || "(anonymous)"}`;
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm?.[1]) return nm[1];
  if (url.startsWith("node:internal/")) return `node:internal/${url.slice(14).split("/")[0]?.replace(/\.js$/, "")}`;
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/")[0]}`;
  const src = /\/(src|gen|bench|test)\/(?:([^/]+)\/)?/.exec(url);
  if (src) return src[2] && !src[2].includes(".") ? `stackl ${src[1]}/${src[2]}` : `stackl ${src[1]}`;
  return url;
}

function shortUrl(url: string): string {
  const nm = /node_modules\/(.+)$/.exec(url);
  if (nm?.[1]) return nm[1];
  const repo = /\/((?:src|gen|bench|test)\/.+)$/.exec(url);
  if (repo?.[1]) return repo[1];
  return url.replace(/^file:\/\//, "");
}

/**
 * Self times of a profile; with `window`, only the samples taken between `fromMs` and `toMs` after the profile
 * started (e.g. the measured phase, leaving out start-up and module loading).
 */
export function summarizeProfile(file: string, window?: { fromMs: number; toMs: number }): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let at = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const delta = p.timeDeltas[i] ?? 0;
    at += delta;
    if (window && (at / 1000 < window.fromMs || at / 1000 > window.toMs)) continue;
    const id = p.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + delta);
  }
  const fn = new Map<string, { name: string; where: string; area: string; ms: number }>();
  const areas = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of self) {
    const node = byId.get(id);
    if (!node) continue;
    totalUs += us;
    const cf = node.callFrame;
    const area = areaOf(cf);
    if (area === "(idle)") {
      idleUs += us;
      continue;
    }
    const where = cf.url === "" ? "" : `${shortUrl(cf.url)}:${cf.lineNumber + 1}`;
    const key = `${cf.functionName}@${where}`;
    const e = fn.get(key) ?? { name: cf.functionName || "(anonymous)", where, area, ms: 0 };
    e.ms += us / 1000;
    fn.set(key, e);
    areas.set(area, (areas.get(area) ?? 0) + us / 1000);
  }
  return {
    totalMs: totalUs / 1000,
    busyMs: (totalUs - idleUs) / 1000,
    functions: [...fn.values()].sort((a, b) => b.ms - a.ms),
    areas: [...areas.entries()].map(([area, ms]) => ({ area, ms })).sort((a, b) => b.ms - a.ms),
  };
}

/** Markdown: busy share, top areas and top self-time functions. */
export function formatProfile(title: string, s: ProfileSummary, top = 25): string {
  const pct = (ms: number) => `${((ms / s.busyMs) * 100).toFixed(1)} %`;
  return [
    `#### ${title}`,
    "",
    `Sampled ${(s.totalMs / 1000).toFixed(1)} s, busy ${(s.busyMs / 1000).toFixed(1)} s ` +
      `(${((s.busyMs / s.totalMs) * 100).toFixed(0)} % of the wall time on the main thread).`,
    "",
    "Self time by area:",
    "",
    markdownTable(
      ["area", "self ms", "share of busy"],
      s.areas.slice(0, 15).map((a) => [a.area, a.ms.toFixed(0), pct(a.ms)]),
    ),
    "",
    `Top ${top} functions by self time:`,
    "",
    markdownTable(
      ["function", "where", "self ms", "share of busy"],
      s.functions.slice(0, top).map((f) => [f.name, f.where || f.area, f.ms.toFixed(0), pct(f.ms)]),
    ),
    "",
  ].join("\n");
}
