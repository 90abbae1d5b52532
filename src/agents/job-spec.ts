import { create, fromJson, type JsonObject, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { type JobSpec, JobSpecSchema } from "../../gen/stackl/v1/jobs_pb.js";
import { type FieldViolation, StacklError } from "../errors.js";
import { MAX_LOST_AFTER_MS, MIN_LOST_AFTER_MS } from "./agents-config.js";

/** A JobSpec as a message or as its init shape. */
export type JobSpecInput = JobSpec | MessageInitShape<typeof JobSpecSchema>;

/** Actions a job may carry. */
export const JOB_ACTIONS = ["create", "update", "delete"] as const;

/** Longest job timeout accepted. */
export const MAX_JOB_TIMEOUT_MS = 7 * 86_400_000;

/** A secret reference: `<provider>:<rest>`, e.g. `env:DB_PASSWORD`, `file:/run/secrets/db`. Never a value. */
const SECRET_REFERENCE = /^[a-z][a-z0-9+.-]*:\S.*$/;
const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

export interface NormalizedJobSpec {
  spec: JobSpec;
  /** The canonical protobuf JSON stored in `jobs.spec`. */
  json: JsonObject;
  tool: string;
  timeoutMs: number;
  lostAfterMs: number;
  stackInstance: string | undefined;
}

/**
 * Validates a job spec and works out its effective timeout and `lost_after`. Throws `invalid_argument` naming every
 * bad field (under `field`, e.g. `spec.invocation.tool`).
 */
export function normalizeJobSpec(
  input: JobSpecInput,
  defaults: { timeoutMs: number; lostAfterMs: number },
  field = "spec",
): NormalizedJobSpec {
  const spec = create(JobSpecSchema, input as MessageInitShape<typeof JobSpecSchema>);
  const violations: FieldViolation[] = [];
  const bad = (path: string, message: string): void => {
    violations.push({ field: `${field}.${path}`, message });
  };
  const inv = spec.invocation;
  if (inv === undefined) {
    bad("invocation", "is required");
  } else {
    if (inv.tool.trim() === "") bad("invocation.tool", "is required (shell, tofu, terraform, ansible or mock)");
    if (inv.tool === "shell" && inv.command.length === 0)
      bad("invocation.command", "a shell job needs a command (argv)");
    if (inv.timeoutSeconds < 0) bad("invocation.timeout_seconds", "must not be negative");
  }
  if (spec.action === "") spec.action = "create";
  if (!(JOB_ACTIONS as readonly string[]).includes(spec.action)) {
    bad("action", `must be one of ${JOB_ACTIONS.join(", ")}`);
  }
  for (const [name, ref] of Object.entries(spec.secrets)) {
    if (!SECRET_NAME.test(name)) bad(`secrets[${JSON.stringify(name)}]`, "names are letters, digits, _ . - (max 128)");
    if (!SECRET_REFERENCE.test(ref)) {
      bad(`secrets[${JSON.stringify(name)}]`, "must be a reference such as env:NAME or file:/path, never a value");
    }
  }
  let timeoutMs = defaults.timeoutMs;
  if (spec.timeout !== undefined) timeoutMs = durationMs(spec.timeout);
  else if (inv !== undefined && inv.timeoutSeconds > 0) timeoutMs = inv.timeoutSeconds * 1000;
  if (timeoutMs <= 0 || timeoutMs > MAX_JOB_TIMEOUT_MS) bad("timeout", "must be more than 0 and at most 7 days");
  let lostAfterMs = defaults.lostAfterMs;
  if (spec.lostAfter !== undefined) lostAfterMs = durationMs(spec.lostAfter);
  if (lostAfterMs < MIN_LOST_AFTER_MS || lostAfterMs > MAX_LOST_AFTER_MS) {
    bad("lost_after", "must be between 1s and 24h");
  }
  if (violations.length > 0) throw StacklError.invalid(violations);
  return {
    spec,
    json: toJson(JobSpecSchema, spec) as JsonObject,
    tool: inv?.tool ?? "",
    timeoutMs,
    lostAfterMs,
    stackInstance: spec.stackInstance === "" ? undefined : spec.stackInstance,
  };
}

/** The stored spec back as a message. */
export function specFromJson(json: JsonObject): JobSpec {
  return fromJson(JobSpecSchema, json, { ignoreUnknownFields: true });
}

const TARGET = /^[^\s\p{Cc}]{1,253}$/u;

/** Checks an agent or pool name used as a job target. */
export function validateTarget(target: string, field = "target"): void {
  if (!TARGET.test(target)) {
    throw StacklError.invalid([{ field, message: "must be an agent name or a pool (1-253 characters, no spaces)" }]);
  }
}
