/**
 * Placement, as the original pipeline (reference 3.1): orchestration policy → SAT policies → replicas policy →
 * SIT policies, but deterministic (target keys sorted) and explained: every rejected target carries the phase,
 * the policy or rule, and its message. Pure: policies are evaluated through the injected `PlacementPolicies`.
 *
 * Built to scale to 1,000 services × 10,000 targets (bench/stacks.ts):
 * - orchestration is evaluated in its grouped form (services with equal resource requirements share one list of
 *   eligible targets and one map of rejected targets) and expanded here, per group rather than per service;
 * - the replicas policy decides each service from its own candidates and count only, so it is evaluated on one
 *   representative per distinct (candidate list, count) — plus every service short of candidates, so that the
 *   "not enough targets" message names exactly the services it named before;
 * - SIT policies do not depend on the service: each (target, policy) is evaluated once;
 * - services that went through the same decisions share their `targets` and `rejections` arrays (see PlacedService).
 */
import type { JsonObject } from "@bufbuild/protobuf";
import type { FunctionalRequirement, InfrastructureTarget, Service } from "../../../gen/stackl/v1/documents_pb.js";

export type PlacementPhase = "orchestration" | "sat_policy" | "replicas" | "sit_policy";

export interface Rejection {
  target: string;
  phase: PlacementPhase;
  /** Policy or rule, e.g. `orchestration.resources`, `keep_in_location`. */
  policy: string;
  message: string;
}

/**
 * One service's placement. `targets` and `rejections` may be the very same arrays as another service's (services
 * with equal requirements go through identical decisions: sharing keeps a 1,000 × 10,000 plan in memory once per
 * group instead of once per service): read them, never mutate them.
 */
export interface PlacedService {
  alias: string;
  service: string;
  /** Chosen targets, sorted by key, one per replica. */
  targets: string[];
  /** Every rejected target with the phase and reason, sorted by target (then phase). */
  rejections: Rejection[];
  /** SAT-policy outputs per chosen target. */
  opaOutputs: Record<string, JsonObject>;
}

export interface PlacementPlan {
  fulfilled: boolean;
  message: string;
  services: PlacedService[];
}

export interface PlacementService {
  alias: string;
  serviceName: string;
  service: Service;
  /** The service's functional requirements by name. */
  functionalRequirements: Map<string, FunctionalRequirement>;
}

export interface PlacementRequest {
  stackInstance: string;
  services: PlacementService[];
  targets: InfrastructureTarget[];
  requiredTags: Record<string, string>;
  /** SAT policies: policy name → parameter objects (each with `service`). */
  satPolicies: Record<string, JsonObject[]>;
  /** Requested replicas per alias (default 1). */
  replicas: Record<string, number>;
  userParams: JsonObject;
  /** Evaluate the replicas policy (always on create; on update only when replicas were given). */
  applyReplicas: boolean;
  /** Evaluate SIT policies on the chosen targets. @default true */
  applySitPolicies?: boolean;
  /** Targets a service already runs on (update): kept first when trimming to the replica count. */
  preferred?: Record<string, readonly string[]>;
}

/** Why the default orchestration policy rejects a target. */
export interface OrchestrationReason {
  readonly rule: string;
  readonly msg: string;
}

/**
 * The default orchestration policy's decision (`solution_groups`) and explanations (`rejection_groups`): services
 * with equal resource requirements share one list of eligible targets and one map of rejected targets.
 */
export interface OrchestrationGroups {
  readonly solution:
    | {
        readonly fulfilled: true;
        readonly groups: readonly { readonly aliases: readonly string[]; readonly targets: readonly string[] }[];
      }
    | { readonly fulfilled: false; readonly msg: string };
  readonly rejections: readonly {
    readonly aliases: readonly string[];
    /** Rejected target key → reasons. */
    readonly rejections: Readonly<Record<string, readonly OrchestrationReason[]>>;
  }[];
}

/**
 * Members a SAT policy's input has besides the placement input: the reference's (3.1 step 5, 3.2). No more: an
 * earlier draft also passed `services_targets` (every service's current candidates), which no contract names and
 * which is O(services × targets) — ~180 MB of JSON at 1,000 × 10,000, more than a policy instance can hold.
 */
export interface SatPolicyExtra {
  parameters: JsonObject;
  user_parameters: JsonObject;
  replicas: Record<string, number>;
}

/** Members a SIT policy's input has besides the placement input (reference 3.1 step 7). */
export interface SitPolicyExtra {
  parameters: JsonObject;
  stack_instance_params: JsonObject;
  target: string;
}

/**
 * Policy evaluations placement needs, with STACKL's result shapes (reference 3.2). `input` is always the object
 * `buildOpaInput` returned for the plan, passed unchanged (so an implementation may encode it once); a SAT or SIT
 * policy's input is `{...input, ...extra}`.
 */
export interface PlacementPolicies {
  orchestration(input: JsonObject): Promise<OrchestrationGroups>;
  satPolicy(
    name: string,
    input: JsonObject,
    extra: SatPolicyExtra,
  ): Promise<
    | { fulfilled: true; targets: readonly { target: string; outputs: Readonly<Record<string, unknown>> }[] }
    | { fulfilled: false; msg: string }
  >;
  replicas(input: {
    parameters: { services: Record<string, number> };
    services: Record<string, { service: string; targets: readonly string[] }>;
  }): Promise<
    | { fulfilled: true; services: Record<string, { service: string; targets: readonly string[] }> }
    | { fulfilled: false; msg: string }
  >;
  sitPolicy(name: string, input: JsonObject, extra: SitPolicyExtra): Promise<readonly { msg: string }[]>;
}

/** `a.localeCompare(b)` (what plans have always been sorted with), without its per-call set-up. */
const collate = new Intl.Collator().compare;

/** The OPA input of the original (reference 3.1 step 3), with keys in deterministic order. */
export function buildOpaInput(req: PlacementRequest): JsonObject {
  const services: JsonObject = {};
  for (const s of req.services) {
    const frs: JsonObject = {};
    let params: JsonObject = { ...(s.service.params ?? {}) };
    for (const name of s.service.functionalRequirements) {
      const fr = s.functionalRequirements.get(name);
      if (fr === undefined) continue;
      const inv: JsonObject = {};
      for (const [provider, i] of Object.entries(fr.invocation).sort(([a], [b]) => collate(a, b))) {
        inv[provider] = { tool: i.tool, image: i.image, description: i.description };
      }
      frs[name] = inv;
      params = { ...params, ...(fr.params ?? {}) };
    }
    services[s.alias] = {
      service: s.serviceName,
      functional_requirements: frs,
      resource_requirements: { ...s.service.resourceRequirements },
      params,
    };
  }
  const infrastructureTargets: JsonObject = {};
  for (const t of [...req.targets].sort((a, b) => collate(a.key, b.key))) {
    infrastructureTargets[t.key] = { resources: { ...t.resources }, tags: { ...t.tags }, params: t.params ?? {} };
  }
  return {
    required_tags: { ...req.requiredTags },
    services,
    infrastructure_targets: infrastructureTargets,
    stack_instance: req.stackInstance,
  };
}

/** A service's progress through the pipeline: one list of rejections per phase, in the order they were found. */
interface ServiceState {
  readonly placed: PlacedService;
  orchestration: Rejection[];
  sat: Rejection[];
  replicas: Rejection[];
  sit: Rejection[];
}

const NONE: Rejection[] = [];

/** Runs the whole pipeline. Never throws for a policy "no": the plan says `fulfilled: false` with the messages. */
export async function planPlacement(req: PlacementRequest, policies: PlacementPolicies): Promise<PlacementPlan> {
  const input = buildOpaInput(req);
  const allTargets = Object.keys(input.infrastructure_targets as JsonObject);
  const order = new TargetOrder(allTargets);
  const states = new Map<string, ServiceState>();
  for (const s of req.services) {
    states.set(s.alias, {
      placed: { alias: s.alias, service: s.serviceName, targets: [], rejections: [], opaOutputs: {} },
      orchestration: NONE,
      sat: NONE,
      replicas: NONE,
      sit: NONE,
    });
  }
  const messages: string[] = [];

  // 1. Orchestration (resources and tags), with the reasons for every rejected target: computed once per group.
  const orchestration = await policies.orchestration(input);
  const solutionOf = new Map<string, readonly string[]>();
  if (orchestration.solution.fulfilled) {
    for (const g of orchestration.solution.groups) for (const a of g.aliases) solutionOf.set(a, g.targets);
  }
  const reasonsOf = new Map<string, ReadonlyMap<string, readonly OrchestrationReason[]>>();
  for (const g of orchestration.rejections) {
    const reasons = new Map(Object.entries(g.rejections));
    for (const a of g.aliases) reasonsOf.set(a, reasons);
  }
  const noReasons: ReadonlyMap<string, readonly OrchestrationReason[]> = new Map();
  const orchestrated = new Memo<{ targets: string[]; rejections: Rejection[] }>();
  for (const st of states.values()) {
    const alias = st.placed.alias;
    const solution = orchestration.solution.fulfilled ? (solutionOf.get(alias) ?? []) : undefined;
    const reasons = reasonsOf.get(alias) ?? noReasons;
    const r = orchestrated.get([solution, reasons], () => {
      const targets = solution !== undefined ? [...solution].sort() : allTargets.filter((t) => !reasons.get(t)?.length);
      const chosen = new Set(targets);
      const rejections: Rejection[] = [];
      for (const t of allTargets) {
        if (chosen.has(t)) continue;
        const why = reasons.get(t) ?? [];
        if (why.length === 0) {
          rejections.push({
            target: t,
            phase: "orchestration",
            policy: "orchestration",
            message: "not selected by the orchestration policy",
          });
        }
        for (const w of why)
          rejections.push({ target: t, phase: "orchestration", policy: `orchestration.${w.rule}`, message: w.msg });
      }
      return { targets, rejections };
    });
    st.placed.targets = r.targets;
    st.orchestration = r.rejections;
  }
  if (!orchestration.solution.fulfilled) messages.push(orchestration.solution.msg);

  // 2. SAT policies filter the candidates of the service each parameter object names.
  for (const [name, paramsList] of Object.entries(req.satPolicies).sort(([a], [b]) => collate(a, b))) {
    for (const parameters of paramsList) {
      const alias = typeof parameters.service === "string" ? parameters.service : "";
      const st = states.get(alias);
      if (st === undefined) continue;
      const p = st.placed;
      const res = await policies.satPolicy(name, input, {
        parameters,
        user_parameters: req.userParams,
        replicas: req.replicas,
      });
      if (st.sat === NONE) st.sat = [];
      if (!res.fulfilled) {
        messages.push(`${name}: ${res.msg}`);
        for (const t of p.targets) st.sat.push({ target: t, phase: "sat_policy", policy: name, message: res.msg });
        p.targets = [];
        continue;
      }
      const kept = new Map(res.targets.map((t) => [t.target, t.outputs]));
      const next: string[] = [];
      for (const t of p.targets) {
        if (kept.has(t)) {
          next.push(t);
          const outs = kept.get(t) ?? {};
          if (Object.keys(outs).length > 0) p.opaOutputs[t] = { ...(p.opaOutputs[t] ?? {}), ...(outs as JsonObject) };
        } else {
          st.sat.push({ target: t, phase: "sat_policy", policy: name, message: `not kept by SAT policy ${name}` });
        }
      }
      p.targets = next;
    }
  }

  // 3. Replicas: the first N candidates (sorted) per service, on distinct targets.
  if (req.applyReplicas) await applyReplicas(req, policies, states, messages);

  // 4. SIT policies: every chosen target's own policies (infringements reject the plan), once per (target, policy).
  let sitFailed = false;
  if (req.applySitPolicies !== false) {
    const byKey = new Map(req.targets.map((t) => [t.key, t]));
    const evaluated = new Map<string, Promise<readonly { msg: string }[]>>();
    const sitOf = new Map<string[], { rejections: Rejection[]; messages: string[] }>();
    for (const st of states.values()) {
      const p = st.placed;
      let found = sitOf.get(p.targets);
      if (found === undefined) {
        found = { rejections: [], messages: [] };
        for (const key of p.targets) {
          const target = byKey.get(key);
          for (const [name, parameters] of Object.entries(target?.policies ?? {}).sort(([a], [b]) => collate(a, b))) {
            const id = JSON.stringify([key, name]);
            let infringements = evaluated.get(id);
            if (infringements === undefined) {
              infringements = policies.sitPolicy(name, input, {
                parameters: parameters as JsonObject,
                stack_instance_params: req.userParams,
                target: key,
              });
              evaluated.set(id, infringements);
            }
            for (const i of await infringements) {
              found.messages.push(`${key}: ${i.msg}`);
              found.rejections.push({ target: key, phase: "sit_policy", policy: name, message: i.msg });
            }
          }
        }
        sitOf.set(p.targets, found);
      }
      for (const m of found.messages) messages.push(m);
      if (found.rejections.length > 0) {
        st.sit = found.rejections;
        sitFailed = true;
      }
    }
  }

  // Every service's rejections sorted by target then phase (stable: within a phase, in the order found).
  const merged = new Memo<Rejection[]>();
  for (const st of states.values()) {
    st.placed.rejections = merged.get([st.orchestration, st.sat, st.replicas, st.sit], () =>
      order.sortRejections([...st.orchestration, ...st.sat, ...st.replicas, ...st.sit]),
    );
  }

  const services = [...states.values()].map((st) => st.placed);
  const unplaced = services.filter((p) => p.targets.length === 0).map((p) => p.alias);
  if (unplaced.length > 0 && messages.length === 0)
    messages.push(`Could not find a target for services ${unplaced.join(", ")}`);
  const fulfilled = unplaced.length === 0 && messages.length === 0 && !sitFailed;
  return { fulfilled, message: messages.join("\n"), services };
}

/**
 * The replicas policy keeps the first N of each service's candidates, each service decided on its own candidates
 * and count (reference 3.3). It is evaluated on one representative per distinct (candidate list, count), plus every
 * service short of candidates (so the "not enough targets" message names the same services as with every service
 * in the input); the representative's result stands for its whole class.
 */
async function applyReplicas(
  req: PlacementRequest,
  policies: PlacementPolicies,
  states: ReadonlyMap<string, ServiceState>,
  messages: string[],
): Promise<void> {
  interface ReplicaClass {
    readonly targets: string[];
    readonly want: number;
    readonly members: ServiceState[];
  }
  const classes = new Memo<ReplicaClass>();
  const classOf = new Map<ServiceState, ReplicaClass>();
  const counts: Record<string, number> = {};
  const services: Record<string, { service: string; targets: readonly string[] }> = {};
  for (const st of states.values()) {
    const p = st.placed;
    const preferred = req.preferred?.[p.alias] ?? [];
    if (preferred.length > 0) {
      const keep = new Set(preferred);
      p.targets = [...p.targets.filter((t) => keep.has(t)), ...p.targets.filter((t) => !keep.has(t))];
    }
    const want = req.replicas[p.alias] ?? 1;
    const c = classes.get([p.targets, want], () => ({ targets: p.targets, want, members: [] }));
    c.members.push(st);
    classOf.set(st, c);
    if (c.members.length === 1 || p.targets.length < want) {
      counts[p.alias] = want;
      services[p.alias] = { service: p.service, targets: p.targets };
    }
  }
  const res = await policies.replicas({ parameters: { services: counts }, services });
  if (!res.fulfilled) {
    messages.push(res.msg);
    for (const st of states.values()) {
      const want = req.replicas[st.placed.alias] ?? 1;
      if (st.placed.targets.length < want) {
        st.replicas = [
          {
            target: "*",
            phase: "replicas",
            policy: "replicas",
            message: `${want} replicas need ${want} distinct targets; only ${st.placed.targets.length} qualify`,
          },
        ];
      }
    }
    return;
  }
  const outcome = new Map<ReplicaClass, { targets: string[]; rejections: Rejection[] }>();
  for (const st of states.values()) {
    const c = classOf.get(st) as ReplicaClass;
    let o = outcome.get(c);
    if (o === undefined) {
      const representative = (c.members[0] as ServiceState).placed.alias;
      const keep = new Set(res.services[representative]?.targets ?? []);
      const rejections: Rejection[] = [];
      for (const t of c.targets) {
        if (!keep.has(t))
          rejections.push({
            target: t,
            phase: "replicas",
            policy: "replicas",
            message: "beyond the requested replicas",
          });
      }
      o = { targets: c.targets.filter((t) => keep.has(t)).sort(), rejections };
      outcome.set(c, o);
    }
    st.placed.targets = o.targets;
    st.replicas = o.rejections.length > 0 ? o.rejections : NONE;
  }
}

/** Results computed once per distinct tuple of keys (compared by identity, or by value for primitives). */
class Memo<T> {
  readonly #ids = new Map<unknown, number>();
  readonly #values = new Map<string, T>();

  get(keys: readonly unknown[], compute: () => T): T {
    const id = keys.map((k) => this.#id(k)).join(",");
    let v = this.#values.get(id);
    if (v === undefined) {
      v = compute();
      this.#values.set(id, v);
    }
    return v;
  }

  #id(key: unknown): number {
    let id = this.#ids.get(key);
    if (id === undefined) {
      id = this.#ids.size;
      this.#ids.set(key, id);
    }
    return id;
  }
}

/** Phases in the order `localeCompare` sorts their names (how plans have always ordered them). */
const PHASE_RANK: ReadonlyMap<string, number> = new Map(
  (["orchestration", "sat_policy", "replicas", "sit_policy"] as const)
    .slice()
    .sort(collate)
    .map((phase, i) => [phase, i]),
);

/**
 * Target keys ranked as `localeCompare` orders them, so that rejections sort on integers: equal to
 * `a.target.localeCompare(b.target) || a.phase.localeCompare(b.phase)`, stable.
 */
class TargetOrder {
  readonly #sorted: string[];
  readonly #rank = new Map<string, number>();

  /** `keys` already sorted with `localeCompare`. */
  constructor(keys: string[]) {
    this.#sorted = keys;
    keys.forEach((k, i) => {
      const prev = keys[i - 1];
      this.#rank.set(k, prev !== undefined && collate(prev, k) === 0 ? (this.#rank.get(prev) as number) : 2 * i);
    });
  }

  /** Even ranks for the targets; an odd one (or an equal one) for any other key, e.g. `*`. */
  rank(key: string): number {
    const known = this.#rank.get(key);
    if (known !== undefined) return known;
    let lo = 0;
    let hi = this.#sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = collate(this.#sorted[mid] as string, key);
      if (c === 0) {
        const rank = this.#rank.get(this.#sorted[mid] as string) as number;
        this.#rank.set(key, rank);
        return rank;
      }
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    this.#rank.set(key, 2 * lo - 1);
    return 2 * lo - 1;
  }

  sortRejections(list: Rejection[]): Rejection[] {
    const keyed = list.map((r, i) => ({ r, target: this.rank(r.target), phase: PHASE_RANK.get(r.phase) ?? 0, i }));
    keyed.sort((a, b) => a.target - b.target || a.phase - b.phase || a.i - b.i);
    return keyed.map((k) => k.r);
  }
}
