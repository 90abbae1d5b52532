/**
 * Structural difference between two JSON values, for revision history. Deterministic: object keys in sorted order,
 * arrays compared index by index (an insertion shows as changes from there on plus an addition at the end).
 * Paths use dots for plain keys (`service.params.region`), `[i]` for indices (`service.functional_requirements[2]`)
 * and `["key"]` for keys that are not plain (`tags["team.owner"]`). The root is the empty path.
 */

export type JsonChangeType = "added" | "removed" | "changed";

export interface JsonChange {
  path: string;
  type: JsonChangeType;
  /** The value before (absent for `added`). */
  before?: unknown;
  /** The value after (absent for `removed`). */
  after?: unknown;
}

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;

/** Every difference from `before` to `after`. `undefined` (and object members whose value is `undefined`) count as absent. */
export function diffJson(before: unknown, after: unknown): JsonChange[] {
  const changes: JsonChange[] = [];
  walk(before, after, "", changes);
  return changes;
}

function walk(before: unknown, after: unknown, path: string, changes: JsonChange[]): void {
  if (before === undefined && after === undefined) return;
  if (before === undefined) {
    changes.push({ path, type: "added", after });
    return;
  }
  if (after === undefined) {
    changes.push({ path, type: "removed", before });
    return;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const length = Math.max(before.length, after.length);
    for (let i = 0; i < length; i++) {
      walk(
        i < before.length ? before[i] : undefined,
        i < after.length ? after[i] : undefined,
        `${path}[${i}]`,
        changes,
      );
    }
    return;
  }
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const key of keys) walk(before[key], after[key], childPath(path, key), changes);
    return;
  }
  if (!sameJson(before, after)) changes.push({ path, type: "changed", before, after });
}

function childPath(path: string, key: string): string {
  if (!PLAIN_KEY.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === "" ? key : `${path}.${key}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Deep equality of JSON values (object key order ignored). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => sameJson(item, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keysA = Object.keys(a).filter((k) => a[k] !== undefined);
    const keysB = Object.keys(b).filter((k) => b[k] !== undefined);
    return keysA.length === keysB.length && keysA.every((k) => Object.hasOwn(b, k) && sameJson(a[k], b[k]));
  }
  return false;
}
