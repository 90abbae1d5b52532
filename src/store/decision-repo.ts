import { createHash, randomBytes } from "node:crypto";
import type { Db } from "./db.js";

export interface DecisionRecord {
  policy: string;
  rule: string;
  input: unknown;
  result: unknown;
  durationMs: number;
  stackInstance?: string | undefined;
  phase?: string | undefined;
  principal?: string | undefined;
  rpc?: string | undefined;
  bundleSha256?: string | undefined;
}

export interface DecisionRow extends DecisionRecord {
  id: string;
  createdAt: Date;
}

export function newDecisionId(): string {
  return `dec_${Date.now().toString(36)}${randomBytes(5).toString("hex")}`;
}

/**
 * Largest `input` or `result` stored as is in the decision log: 256 KiB of JSON. A larger one (the placement input
 * of a big estate is megabytes, and a plan records several decisions) is stored as
 * `{"truncated": true, "bytes": <UTF-8 length of its JSON text>, "sha256": <hex SHA-256 of that text>}`: enough to
 * tell whether two decisions saw the same input, without making every plan write megabytes.
 */
export const DECISION_VALUE_MAX_BYTES = 256 * 1024;

/** What the decision log stores instead of a value whose JSON text exceeds DECISION_VALUE_MAX_BYTES. */
export interface TruncatedDecisionValue {
  truncated: true;
  bytes: number;
  sha256: string;
}

function isTruncatedMarker(value: unknown): value is TruncatedDecisionValue {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return v.truncated === true && typeof v.sha256 === "string" && typeof v.bytes === "number";
}

/** The marker stored for a value whose JSON text (UTF-8) is `json`. */
export function truncatedDecisionValue(json: Uint8Array): TruncatedDecisionValue {
  return { truncated: true, bytes: json.length, sha256: createHash("sha256").update(json).digest("hex") };
}

/** The marker for `json`, or undefined when it is small enough to be stored as is. */
function truncation(json: string): TruncatedDecisionValue | undefined {
  // A UTF-16 code unit is 1-3 bytes of UTF-8: measure exactly only in between.
  if (json.length * 3 <= DECISION_VALUE_MAX_BYTES) return undefined;
  if (json.length <= DECISION_VALUE_MAX_BYTES && Buffer.byteLength(json, "utf8") <= DECISION_VALUE_MAX_BYTES) {
    return undefined;
  }
  return truncatedDecisionValue(Buffer.from(json, "utf8"));
}

/**
 * JSON texts measured by cappedDecisionValue, so that recording the same object does not encode it again (recorded
 * values are never mutated afterwards).
 */
const measured = new WeakMap<object, string>();

/** `value` as the decision log stores it: itself, or a TruncatedDecisionValue when its JSON exceeds the cap. */
export function cappedDecisionValue(value: unknown): unknown {
  if (value === undefined || value === null || isTruncatedMarker(value)) return value;
  const json = JSON.stringify(value);
  const marker = truncation(json);
  if (marker !== undefined) return marker;
  if (typeof value === "object") measured.set(value, json);
  return value;
}

/** The JSON text stored for `value`. */
function cappedJson(value: unknown): string {
  const json =
    (typeof value === "object" && value !== null ? measured.get(value) : undefined) ?? JSON.stringify(value ?? null);
  const marker = truncation(json);
  return marker === undefined ? json : JSON.stringify(marker);
}

/** The policy decision log. */
export class DecisionRepo {
  constructor(private readonly db: Db) {}

  /**
   * Records decisions in one statement; returns their ids in order. An `input` or `result` whose JSON exceeds
   * DECISION_VALUE_MAX_BYTES is stored as a TruncatedDecisionValue.
   */
  async record(decisions: DecisionRecord[], signal?: AbortSignal): Promise<string[]> {
    if (decisions.length === 0) return [];
    const ids = decisions.map(() => newDecisionId());
    await this.db.query(
      `INSERT INTO policy_decisions (id, policy, rule, input, result, duration_ms, stack_instance, phase, principal, rpc,
                                     bundle_sha256, created_at)
       SELECT d.id, d.policy, d.rule, d.input::jsonb, d.result::jsonb, d.duration_ms, d.stack_instance, d.phase,
              d.principal, d.rpc, d.bundle_sha256, clock_timestamp()
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $11::text[])
              AS d(id, policy, rule, input, result, duration_ms, stack_instance, phase, principal, rpc, bundle_sha256)`,
      [
        ids,
        decisions.map((d) => d.policy),
        decisions.map((d) => d.rule),
        decisions.map((d) => cappedJson(d.input)),
        decisions.map((d) => cappedJson(d.result)),
        decisions.map((d) => d.durationMs),
        decisions.map((d) => d.stackInstance ?? null),
        decisions.map((d) => d.phase ?? null),
        decisions.map((d) => d.principal ?? null),
        decisions.map((d) => d.rpc ?? null),
        decisions.map((d) => d.bundleSha256 ?? null),
      ],
      { signal },
    );
    return ids;
  }

  async list(opts: {
    policy?: string | undefined;
    stackInstance?: string | undefined;
    limit: number;
    before?: { createdAt: string; id: string } | undefined;
    signal?: AbortSignal | undefined;
  }): Promise<DecisionRow[]> {
    const res = await this.db.query<{
      id: string;
      policy: string;
      rule: string;
      input: unknown;
      result: unknown;
      duration_ms: number;
      stack_instance: string | null;
      phase: string | null;
      principal: string | null;
      rpc: string | null;
      bundle_sha256: string | null;
      created_at: Date;
    }>(
      `SELECT id, policy, rule, input, result, duration_ms, stack_instance, phase, principal, rpc, bundle_sha256, created_at
         FROM policy_decisions
        WHERE ($1::text IS NULL OR policy = $1) AND ($2::text IS NULL OR stack_instance = $2)
          AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::text))
        ORDER BY created_at DESC, id DESC LIMIT $5`,
      [
        opts.policy || null,
        opts.stackInstance || null,
        opts.before?.createdAt ?? null,
        opts.before?.id ?? null,
        opts.limit,
      ],
      { signal: opts.signal },
    );
    return res.rows.map((r) => ({
      id: r.id,
      policy: r.policy,
      rule: r.rule,
      input: r.input,
      result: r.result,
      durationMs: Number(r.duration_ms),
      stackInstance: r.stack_instance ?? undefined,
      phase: r.phase ?? undefined,
      principal: r.principal ?? undefined,
      rpc: r.rpc ?? undefined,
      bundleSha256: r.bundle_sha256 ?? undefined,
      createdAt: r.created_at,
    }));
  }
}
