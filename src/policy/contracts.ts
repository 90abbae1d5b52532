/**
 * STACKL's policy contracts (reference/stackl.md §3.2), typed: each wrapper evaluates one rule of a built-in or user
 * policy, checks the shape of what it returned and hands back a typed value plus what the decision log records.
 *
 * | wrapper                  | policy / rule                | returns                                             |
 * |--------------------------|------------------------------|-----------------------------------------------------|
 * | orchestrationSolutions   | orchestration / solutions    | {fulfilled, services: {alias: {service, targets}}} or {fulfilled: false, msg} |
 * | orchestrationRejections  | orchestration / rejections   | {alias: {target: [reason]}} (STACKL's explanation)   |
 * | orchestrationSolutionGroups  | orchestration / solution_groups  | solutions grouped by equal resource requirements |
 * | orchestrationRejectionGroups | orchestration / rejection_groups | rejections grouped likewise                      |
 * | replicasSolutions        | replicas / solutions         | as orchestration, trimmed                           |
 * | satPolicySolutions       | <template> / solutions       | {fulfilled, targets: [{target, outputs}]} or {fulfilled: false, msg} |
 * | sitPolicyInfringements   | <template> / infringement    | [{msg}] (empty = no infringement)                   |
 * | servicePolicyFilter      | <template> / filter          | functional requirement names                        |
 * | authorize                | stackl.authz / allow, reason | {allow, reason}                                     |
 *
 * A user policy returning another shape fails with StacklError `failed_precondition` naming the policy, the rule
 * and the offending path (`solutions.targets[2]`); a built-in one with `internal`. Results are normalised to be
 * deterministic: object keys sorted, sets (which WebAssembly returns in insertion order) sorted and de-duplicated.
 */
import { ErrorCode, type FieldViolation, StacklError } from "../errors.js";
import { BUILTIN_POLICIES, type BuiltinPolicyName, loadBuiltinPolicy } from "./builtin-policies.js";
import { type CompiledPolicy, EncodedInput, type Evaluation, PolicyEngine } from "./policy-engine.js";
import { type ContractRule, entrypointOf } from "./rego-compiler.js";

// ---------------------------------------------------------------------------------------------------------------
// Inputs (reference §3.1 step 3 and §3.2)

export interface OrchestrationServiceInput {
  /** The service document's name (the key is the SAT alias). */
  service: string;
  /** fr name → cloud provider → invocation. */
  functional_requirements?: Record<string, Record<string, unknown>>;
  /** Minimum capacities, e.g. `{"memory": "2GB", "cpu": 2}`. */
  resource_requirements?: Record<string, unknown>;
  params?: Record<string, unknown>;
}

export interface InfrastructureTargetInput {
  /** Capacities, e.g. `{"memory": "64GB", "cpu": "32"}`. */
  resources?: Record<string, unknown>;
  tags?: Record<string, unknown>;
  params?: Record<string, unknown>;
}

/** The placement input: every placement policy gets it (SAT and SIT policies with additions). */
export interface OrchestrationInput {
  /** Required tags; the value `"all"` matches any. */
  required_tags?: Record<string, unknown>;
  /** alias → service. */
  services: Record<string, OrchestrationServiceInput>;
  /** `env.location.zone` → target. */
  infrastructure_targets: Record<string, InfrastructureTargetInput>;
  stack_instance?: string;
}

export interface ServicePlacement {
  readonly service: string;
  /** Target keys, in policy order (sorted by key for the built-ins). */
  readonly targets: readonly string[];
}

export type PlacementResult =
  | { readonly fulfilled: true; readonly services: Readonly<Record<string, ServicePlacement>> }
  | { readonly fulfilled: false; readonly msg: string };

/** Services with equal resource requirements and their eligible targets. */
export interface SolutionGroup {
  /** Aliases with these requirements, sorted. */
  readonly aliases: readonly string[];
  readonly resource_requirements: Readonly<Record<string, unknown>>;
  /** Eligible target keys, sorted. */
  readonly targets: readonly string[];
}

export type GroupedPlacementResult =
  | { readonly fulfilled: true; readonly groups: readonly SolutionGroup[] }
  | { readonly fulfilled: false; readonly msg: string };

/** Why the orchestration policy rejected a target for a service. */
export type RejectionReason =
  | {
      readonly rule: "resources";
      readonly resource: string;
      readonly required: unknown;
      readonly available: unknown;
      readonly msg: string;
    }
  | {
      readonly rule: "tags";
      readonly tag: string;
      readonly required: unknown;
      readonly actual: unknown;
      readonly msg: string;
    };

/** Rejected target key → reasons. */
export type TargetRejections = Readonly<Record<string, readonly RejectionReason[]>>;

/** alias → rejected target key → reasons (aliases with no rejected target map to `{}`). */
export type OrchestrationRejections = Readonly<Record<string, TargetRejections>>;

/** The rejections shared by every service with the same resource requirements. */
export interface RejectionGroup {
  /** Aliases with these requirements, sorted. */
  readonly aliases: readonly string[];
  readonly resource_requirements: Readonly<Record<string, unknown>>;
  readonly rejections: TargetRejections;
}

export interface ReplicasInput {
  parameters: {
    /** alias → replica count (1 unless the request says otherwise). */
    services: Record<string, number>;
    exclusive?: boolean;
  };
  /** alias → candidates, in preference order. */
  services: Record<string, { service: string; targets: readonly string[] }>;
}

export interface SatPolicyInput extends OrchestrationInput {
  /** One parameter object of `SAT.policies.<name>`; `service` names the alias it applies to. */
  parameters: Record<string, unknown>;
  user_parameters?: Record<string, unknown>;
  replicas?: Record<string, number>;
}

export interface SitPolicyInput extends OrchestrationInput {
  /** The `policies.<name>` attributes of the target's environment/location/zone. */
  parameters: Record<string, unknown>;
  stack_instance_params?: Record<string, unknown>;
  /** The target key being checked. */
  target: string;
}

export interface ServicePolicyInput {
  inputs: Record<string, unknown>;
  functional_requirements: readonly string[];
  infrastructure_target: string;
  service: string;
  action: "create" | "update" | "delete";
  stack_instance: string;
}

export interface SatTarget {
  readonly target: string;
  /** The declared outputs the policy returned for this target (`opa_outputs`); `{}` without declared outputs. */
  readonly outputs: Readonly<Record<string, unknown>>;
}

export type SatSolutions =
  | { readonly fulfilled: true; readonly targets: readonly SatTarget[] }
  | { readonly fulfilled: false; readonly msg: string };

export interface Infringement {
  readonly msg: string;
}

export interface AuthzInput {
  principal: { name: string; roles: readonly string[] };
  /** `stackl.v1.DocumentService/ApplyDocuments`. */
  rpc: string;
  [key: string]: unknown;
}

export interface AuthzDecision {
  readonly allow: boolean;
  readonly reason: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Results

/** A contract's typed value plus what the decision log records. */
export interface ContractDecision<T> {
  readonly value: T;
  /** Policy name: a built-in (`orchestration`, `replicas`, `authz`) or a policy template. */
  readonly policy: string;
  /** Rule evaluated (`solutions`, `rejections`, `infringement`, `filter`, `allow`). */
  readonly rule: string;
  /** The rule's value as the policy returned it (undefined when undefined). */
  readonly raw: unknown;
  readonly durationMs: number;
  readonly bundleSha256: string;
}

/** A user policy to evaluate: its template name (= Rego package) and compiled bundle. */
export interface UserPolicy {
  readonly name: string;
  /** The bundle (tar.gz) or an already loaded policy. */
  readonly bundle: Uint8Array | CompiledPolicy;
  /** SAT policies: the template's `outputs` (names of extra fields per target); null/absent = targets are keys. */
  readonly outputs?: readonly string[] | null;
}

export interface ContractOptions {
  /**
   * Engine that loads and caches the bundles.
   * @default a process-wide engine with default options (defaultPolicyEngine())
   */
  engine?: PolicyEngine;
  /**
   * Repository root holding `gen/policies/` (built-in policies).
   * @default the root this module lives in
   */
  root?: string;
}

let sharedEngine: PolicyEngine | undefined;

/** The process-wide engine used when a wrapper is given none. */
export function defaultPolicyEngine(): PolicyEngine {
  sharedEngine ??= new PolicyEngine();
  return sharedEngine;
}

// ---------------------------------------------------------------------------------------------------------------
// Built-in policies

/**
 * `input` plus `sort_hints` (its target keys and service aliases, sorted), which the built-in orchestration policy
 * uses instead of sorting them itself: WebAssembly's `sort` is an insertion sort, quadratic on the hash order in
 * which WebAssembly iterates objects (seconds for 10,000 targets), linear on sorted input. The wrappers add the
 * hints to plain inputs; callers who pre-encode an input (EncodedInput) should encode `withSortHints(input)`.
 */
export function withSortHints(input: OrchestrationInput): OrchestrationInput & {
  sort_hints: { infrastructure_targets: string[]; services: string[] };
} {
  return {
    ...input,
    sort_hints: {
      infrastructure_targets: Object.keys(input.infrastructure_targets ?? {}).sort(),
      services: Object.keys(input.services ?? {}).sort(),
    },
  };
}

export async function orchestrationSolutions(
  input: OrchestrationInput | EncodedInput,
  options: ContractOptions = {},
): Promise<ContractDecision<PlacementResult>> {
  const ev = await evaluateBuiltin(
    "orchestration",
    "solutions",
    isEncoded(input) ? input : withSortHints(input),
    options,
  );
  const expected = isEncoded(input) ? undefined : Object.keys(input.services ?? {});
  return ev.decide((c) => parsePlacement(c, ev.raw, expected));
}

export async function orchestrationRejections(
  input: OrchestrationInput | EncodedInput,
  options: ContractOptions = {},
): Promise<ContractDecision<OrchestrationRejections>> {
  const ev = await evaluateBuiltin(
    "orchestration",
    "rejections",
    isEncoded(input) ? input : withSortHints(input),
    options,
  );
  return ev.decide((c) => parseRejections(c, ev.raw));
}

/**
 * orchestration/solution_groups: the orchestration decision grouped by distinct resource requirements — what
 * placement of many services should use (`expandSolutionGroups` turns it into the `solutions` shape).
 */
export async function orchestrationSolutionGroups(
  input: OrchestrationInput | EncodedInput,
  options: ContractOptions = {},
): Promise<ContractDecision<GroupedPlacementResult>> {
  const ev = await evaluateBuiltin(
    "orchestration",
    "solution_groups",
    isEncoded(input) ? input : withSortHints(input),
    options,
  );
  return ev.decide((c) => parseSolutionGroups(c, ev.raw));
}

/** The `solutions` shape of a grouped decision: every alias with its service name and its group's targets. */
export function expandSolutionGroups(input: OrchestrationInput, grouped: GroupedPlacementResult): PlacementResult {
  if (!grouped.fulfilled) return grouped;
  const services: Record<string, ServicePlacement> = {};
  const aliases = grouped.groups.flatMap((g) => g.aliases.map((alias) => [alias, g.targets] as const));
  for (const [alias, targets] of aliases.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const service = input.services[alias]?.service;
    if (service !== undefined) services[alias] = { service, targets };
  }
  return { fulfilled: true, services };
}

/** orchestration/rejection_groups: the rejections grouped by distinct resource requirements (compact). */
export async function orchestrationRejectionGroups(
  input: OrchestrationInput | EncodedInput,
  options: ContractOptions = {},
): Promise<ContractDecision<readonly RejectionGroup[]>> {
  const ev = await evaluateBuiltin(
    "orchestration",
    "rejection_groups",
    isEncoded(input) ? input : withSortHints(input),
    options,
  );
  return ev.decide((c) => parseRejectionGroups(c, ev.raw));
}

export async function replicasSolutions(
  input: ReplicasInput,
  options: ContractOptions = {},
): Promise<ContractDecision<PlacementResult>> {
  const ev = await evaluateBuiltin("replicas", "solutions", input, options);
  return ev.decide((c) => parsePlacement(c, ev.raw, Object.keys(input.services)));
}

/** The authz decision; an evaluation failure or a malformed result throws (callers deny: fail closed). */
export async function authorize(
  input: AuthzInput,
  options: ContractOptions = {},
): Promise<ContractDecision<AuthzDecision>> {
  const engine = options.engine ?? defaultPolicyEngine();
  const policy = await loadBuiltinPolicy(engine, "authz", options.root);
  const allow = policy.evaluate<unknown>("stackl/authz/allow", input);
  const reason = policy.evaluate<unknown>("stackl/authz/reason", input);
  const c = new Checker("authz", "allow", true);
  if (typeof allow.result !== "boolean") c.fail("allow", "must be true or false", allow.result);
  if (typeof reason.result !== "string") c.fail("reason", "must be a string", reason.result);
  c.throwIfFailed();
  return {
    value: { allow: allow.result as boolean, reason: reason.result as string },
    policy: "authz",
    rule: "allow",
    raw: { allow: allow.result, reason: reason.result },
    durationMs: allow.durationMs + reason.durationMs,
    bundleSha256: policy.sha256,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// User policies

export async function satPolicySolutions(
  policy: UserPolicy,
  input: SatPolicyInput | EncodedInput,
  options: ContractOptions = {},
): Promise<ContractDecision<SatSolutions>> {
  const ev = await evaluateUser(policy, "solutions", input, options);
  return ev.decide((c) => parseSatSolutions(c, ev.raw, policy.outputs ?? null));
}

export async function sitPolicyInfringements(
  policy: UserPolicy,
  input: SitPolicyInput | EncodedInput,
  options: ContractOptions = {},
): Promise<ContractDecision<readonly Infringement[]>> {
  const ev = await evaluateUser(policy, "infringement", input, options);
  return ev.decide((c) => parseInfringements(c, ev.raw));
}

export async function servicePolicyFilter(
  policy: UserPolicy,
  input: ServicePolicyInput,
  options: ContractOptions = {},
): Promise<ContractDecision<readonly string[]>> {
  const ev = await evaluateUser(policy, "filter", input, options);
  return ev.decide((c) => parseFilter(c, ev.raw));
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluation plumbing

class PendingDecision {
  constructor(
    readonly policy: string,
    readonly rule: string,
    readonly builtin: boolean,
    readonly evaluation: Evaluation,
    readonly sha256: string,
  ) {}

  get raw(): unknown {
    return this.evaluation.result;
  }

  decide<T>(parse: (c: Checker) => T): ContractDecision<T> {
    const c = new Checker(this.policy, this.rule, this.builtin);
    const value = parse(c);
    c.throwIfFailed();
    return {
      value,
      policy: this.policy,
      rule: this.rule,
      raw: this.evaluation.result,
      durationMs: this.evaluation.durationMs,
      bundleSha256: this.sha256,
    };
  }
}

async function evaluateBuiltin(
  name: BuiltinPolicyName,
  rule: string,
  input: unknown,
  options: ContractOptions,
): Promise<PendingDecision> {
  const engine = options.engine ?? defaultPolicyEngine();
  const policy = await loadBuiltinPolicy(engine, name, options.root);
  let evaluation: Evaluation;
  try {
    evaluation = policy.evaluate(entrypointOf(BUILTIN_POLICIES[name].packageName, rule), input);
  } catch (err) {
    if (err instanceof StacklError) {
      throw new StacklError(err.code, `built-in policy ${name}: ${err.message}`, {
        details: { ...err.details, policy: name, rule },
        cause: err,
      });
    }
    throw err;
  }
  return new PendingDecision(name, rule, true, evaluation, policy.sha256);
}

async function evaluateUser(
  policy: UserPolicy,
  rule: ContractRule,
  input: unknown,
  options: ContractOptions,
): Promise<PendingDecision> {
  const engine = options.engine ?? defaultPolicyEngine();
  const compiled = policy.bundle instanceof Uint8Array ? await engine.load(policy.bundle) : policy.bundle;
  const entrypoint = entrypointOf(policy.name, rule);
  if (!compiled.hasEntrypoint(entrypoint)) {
    throw new StacklError(
      ErrorCode.FailedPrecondition,
      `policy template "${policy.name}" has no ${rule} rule (its bundle has: ${compiled.entrypoints.join(", ") || "no entrypoints"})`,
      { details: { policy: policy.name, rule, bundle_sha256: compiled.sha256 } },
    );
  }
  let evaluation: Evaluation;
  try {
    evaluation = compiled.evaluate(entrypoint, input);
  } catch (err) {
    if (err instanceof StacklError) {
      throw new StacklError(err.code, `policy template "${policy.name}": ${err.message}`, {
        details: { ...err.details, policy: policy.name, rule },
        cause: err,
      });
    }
    throw err;
  }
  return new PendingDecision(policy.name, rule, false, evaluation, compiled.sha256);
}

function isEncoded(input: unknown): input is EncodedInput {
  return input instanceof EncodedInput;
}

/** Collects shape violations of a policy's result; throws them all at once. */
class Checker {
  readonly #violations: FieldViolation[] = [];
  constructor(
    readonly policy: string,
    readonly rule: string,
    readonly builtin: boolean,
  ) {}

  /** Records a violation at `path` (relative to the rule's value); `got`, when given, is previewed. */
  fail(path: string, message: string, ...got: [unknown?]): void {
    const where = path === "" ? this.rule : path.startsWith("[") ? `${this.rule}${path}` : `${this.rule}.${path}`;
    const suffix = got.length > 0 ? `, got ${preview(got[0])}` : "";
    this.#violations.push({ field: where, message: `${message}${suffix}` });
  }

  throwIfFailed(): void {
    const first = this.#violations[0];
    if (first === undefined) return;
    const what = this.builtin ? `built-in policy ${this.policy}` : `policy template "${this.policy}"`;
    const more = this.#violations.length > 1 ? ` (and ${this.#violations.length - 1} more)` : "";
    throw new StacklError(
      this.builtin ? ErrorCode.Internal : ErrorCode.FailedPrecondition,
      `${what} returned a malformed ${this.rule} result: ${first.field} ${first.message}${more}`,
      { violations: [...this.#violations], details: { policy: this.policy, rule: this.rule } },
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Result parsers

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function sortedKeys(o: Record<string, unknown>): string[] {
  return Object.keys(o).sort();
}

/** The `{fulfilled: false, msg}` branch, or undefined when `raw` is not "not fulfilled". */
function parseNotFulfilled(c: Checker, raw: Record<string, unknown>): { fulfilled: false; msg: string } | undefined {
  if (raw.fulfilled !== false) return undefined;
  if (typeof raw.msg !== "string") {
    c.fail("msg", "must be a string when fulfilled is false", raw.msg);
    return { fulfilled: false, msg: "" };
  }
  return { fulfilled: false, msg: raw.msg };
}

function parsePlacement(c: Checker, raw: unknown, expectedAliases: readonly string[] | undefined): PlacementResult {
  const bad: PlacementResult = { fulfilled: false, msg: "" };
  if (!isObject(raw)) {
    c.fail("", 'must be {"fulfilled": true, "services": {...}} or {"fulfilled": false, "msg": "..."}', raw);
    return bad;
  }
  const notFulfilled = parseNotFulfilled(c, raw);
  if (notFulfilled !== undefined) return notFulfilled;
  if (raw.fulfilled !== true) {
    c.fail("fulfilled", "must be true or false", raw.fulfilled);
    return bad;
  }
  if (!isObject(raw.services)) {
    c.fail("services", "must be an object alias -> {service, targets}", raw.services);
    return bad;
  }
  const services: Record<string, ServicePlacement> = {};
  for (const alias of sortedKeys(raw.services)) {
    const s = raw.services[alias];
    if (!isObject(s)) {
      c.fail(`services.${alias}`, "must be {service, targets}", s);
      continue;
    }
    if (typeof s.service !== "string") c.fail(`services.${alias}.service`, "must be a string", s.service);
    const targets = stringArray(c, `services.${alias}.targets`, s.targets);
    services[alias] = { service: String(s.service), targets };
  }
  for (const alias of expectedAliases ?? []) {
    if (!(alias in services)) c.fail(`services.${alias}`, "is missing (every service of the input must be placed)");
  }
  return { fulfilled: true, services };
}

function parseRejections(c: Checker, raw: unknown): OrchestrationRejections {
  const out: Record<string, TargetRejections> = {};
  if (!isObject(raw)) {
    c.fail("", "must be an object alias -> target -> reasons", raw);
    return out;
  }
  for (const alias of sortedKeys(raw)) out[alias] = parseTargetRejections(c, alias, raw[alias]);
  return out;
}

function parseTargetRejections(c: Checker, path: string, raw: unknown): TargetRejections {
  const targets: Record<string, RejectionReason[]> = {};
  if (!isObject(raw)) {
    c.fail(path, "must be an object target -> reasons", raw);
    return targets;
  }
  for (const key of sortedKeys(raw)) {
    const reasons = raw[key];
    if (!Array.isArray(reasons)) {
      c.fail(`${path}.${key}`, "must be a list of reasons", reasons);
      continue;
    }
    targets[key] = reasons.filter((r, i): r is RejectionReason => {
      const ok = isObject(r) && (r.rule === "resources" || r.rule === "tags") && typeof r.msg === "string";
      if (!ok) c.fail(`${path}.${key}[${i}]`, 'must be {"rule": "resources"|"tags", "msg", ...}', r);
      return ok;
    });
  }
  return targets;
}

function parseSolutionGroups(c: Checker, raw: unknown): GroupedPlacementResult {
  const bad: GroupedPlacementResult = { fulfilled: false, msg: "" };
  if (!isObject(raw)) {
    c.fail("", 'must be {"fulfilled": true, "groups": [...]} or {"fulfilled": false, "msg": "..."}', raw);
    return bad;
  }
  const notFulfilled = parseNotFulfilled(c, raw);
  if (notFulfilled !== undefined) return notFulfilled;
  if (raw.fulfilled !== true || !Array.isArray(raw.groups)) {
    c.fail("", 'must be {"fulfilled": true, "groups": [...]}', raw);
    return bad;
  }
  const groups = raw.groups.map((g: unknown, i: number): SolutionGroup => {
    if (!isObject(g) || !isObject(g.resource_requirements)) {
      c.fail(`groups[${i}]`, "must be {aliases, resource_requirements, targets}", g);
      return { aliases: [], resource_requirements: {}, targets: [] };
    }
    return {
      aliases: stringArray(c, `groups[${i}].aliases`, g.aliases),
      resource_requirements: g.resource_requirements,
      targets: stringArray(c, `groups[${i}].targets`, g.targets),
    };
  });
  return { fulfilled: true, groups };
}

function parseRejectionGroups(c: Checker, raw: unknown): RejectionGroup[] {
  if (!Array.isArray(raw)) {
    c.fail("", "must be a list of {aliases, resource_requirements, rejections}", raw);
    return [];
  }
  return raw.map((g: unknown, i: number) => {
    if (!isObject(g) || !isObject(g.resource_requirements)) {
      c.fail(`[${i}]`, "must be {aliases, resource_requirements, rejections}", g);
      return { aliases: [], resource_requirements: {}, rejections: {} };
    }
    return {
      aliases: stringArray(c, `[${i}].aliases`, g.aliases),
      resource_requirements: g.resource_requirements,
      rejections: parseTargetRejections(c, `[${i}].rejections`, g.rejections),
    };
  });
}

function parseSatSolutions(c: Checker, raw: unknown, outputs: readonly string[] | null): SatSolutions {
  const bad: SatSolutions = { fulfilled: false, msg: "" };
  if (raw === undefined) {
    c.fail(
      "",
      'is undefined for this input; a SAT policy must return {"fulfilled": true, "targets": [...]} or {"fulfilled": false, "msg": "..."}',
    );
    return bad;
  }
  if (!isObject(raw)) {
    c.fail("", 'must be {"fulfilled": true, "targets": [...]} or {"fulfilled": false, "msg": "..."}', raw);
    return bad;
  }
  const notFulfilled = parseNotFulfilled(c, raw);
  if (notFulfilled !== undefined) return notFulfilled;
  if (raw.fulfilled !== true) {
    c.fail("fulfilled", "must be true or false", raw.fulfilled);
    return bad;
  }
  if (!Array.isArray(raw.targets)) {
    c.fail("targets", 'must be a list of target keys or {"target": key, <outputs>...} objects', raw.targets);
    return bad;
  }
  const targets: SatTarget[] = [];
  const seen = new Set<string>();
  raw.targets.forEach((entry: unknown, i: number) => {
    let target: string;
    let fields: Record<string, unknown> = {};
    if (typeof entry === "string") {
      target = entry;
    } else if (isObject(entry) && typeof entry.target === "string") {
      target = entry.target;
      fields = entry;
    } else {
      c.fail(`targets[${i}]`, 'must be a target key or {"target": key, <outputs>...}', entry);
      return;
    }
    if (seen.has(target)) return; // a set in Rego, an array here: keep the first
    seen.add(target);
    const out: Record<string, unknown> = {};
    for (const name of outputs ?? []) if (name in fields) out[name] = fields[name];
    targets.push({ target, outputs: out });
  });
  // A filter over the candidates (placement keeps the candidates' order): sorted here, so that the result does not
  // depend on the order WebAssembly iterated the input's objects in.
  targets.sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
  return { fulfilled: true, targets };
}

function parseInfringements(c: Checker, raw: unknown): Infringement[] {
  if (raw === undefined) return []; // e.g. `infringement = x { cond }` with cond false: nothing infringed
  if (!Array.isArray(raw)) {
    c.fail("", 'must be a set of {"msg": "..."}', raw);
    return [];
  }
  const msgs = new Set<string>();
  raw.forEach((entry: unknown, i: number) => {
    if (isObject(entry) && typeof entry.msg === "string") msgs.add(entry.msg);
    else c.fail(`[${i}]`, 'must be {"msg": "<string>"}', entry);
  });
  return [...msgs].sort().map((msg) => ({ msg }));
}

function parseFilter(c: Checker, raw: unknown): string[] {
  if (raw === undefined) {
    c.fail("", "is undefined for this input; a service policy must return the set of functional requirements to run");
    return [];
  }
  return [...new Set(stringArray(c, "", raw))].sort();
}

function stringArray(c: Checker, path: string, raw: unknown): string[] {
  if (!Array.isArray(raw)) {
    c.fail(path, "must be a list of strings", raw);
    return [];
  }
  const out: string[] = [];
  raw.forEach((v: unknown, i: number) => {
    if (typeof v === "string") out.push(v);
    else c.fail(`${path}[${i}]`, "must be a string", v);
  });
  return out;
}

/** A short JSON rendering of a bad value for messages. */
function preview(v: unknown): string {
  if (v === undefined) return "undefined";
  let s: string;
  try {
    s = JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}
