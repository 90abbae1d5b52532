import type { JsonObject, JsonValue } from "@bufbuild/protobuf";

/**
 * A functional requirement's output spec maps output names to paths into the tool's JSON output (the original used
 * glom paths; we take the common subset): `a.b.c`, array indexes as `items.0.name` or `items[0].name`, an optional
 * leading `$.`; `$`, `.` or an empty path is the whole document. A path that leads nowhere gives `null`.
 */

/** Splits a path into keys; numeric segments index arrays. */
export function parsePath(path: string): string[] {
  let p = path.trim();
  if (p === "" || p === "$" || p === ".") return [];
  if (p.startsWith("$.")) p = p.slice(2);
  else if (p.startsWith("$[")) p = p.slice(1);
  return p
    .replace(/\[(\d+)\]/g, ".$1")
    .split(".")
    .filter((s) => s !== "");
}

/** The value at `path`, or undefined when there is none. */
export function lookupPath(doc: JsonValue, path: string): JsonValue | undefined {
  let cur: JsonValue | undefined = doc;
  for (const key of parsePath(path)) {
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(key)) return undefined;
      cur = cur[Number(key)];
    } else if (cur !== null && typeof cur === "object") {
      cur = Object.hasOwn(cur, key) ? cur[key] : undefined;
    } else {
      return undefined;
    }
    if (cur === undefined) return undefined;
  }
  return cur;
}

/** Applies an output spec: with an empty spec the document is returned unchanged. */
export function mapOutputs(doc: JsonObject, spec: Readonly<Record<string, string>>): JsonObject {
  const entries = Object.entries(spec);
  if (entries.length === 0) return doc;
  const out: JsonObject = {};
  for (const [name, path] of entries) out[name] = lookupPath(doc, path) ?? null;
  return out;
}
