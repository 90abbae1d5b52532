/**
 * Placement, as the original pipeline (reference 3.1): orchestration policy → SAT policies → replicas policy →
 * SIT policies, but deterministic (target keys sorted) and explained: every rejected target carries the phase,
 * the policy or rule, and its message. Pure: policies are evaluated through the injected `PlacementPolicies`.
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

export interface PlacedService {
  alias: string;
  service: string;
  /** Chosen targets, sorted by key, one per replica. */
  targets: string[];
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

/** Policy evaluations placement needs, with STACKL's result shapes (reference 3.2). */
export interface PlacementPolicies {
  orchestration(
    input: JsonObject,
  ): Promise<
    | { fulfilled: true; services: Record<string, { service: string; targets: readonly string[] }> }
    | { fulfilled: false; msg: string }
  >;
  /** alias → target → reasons the default orchestration policy rejects it. */
  orchestrationRejections(
    input: JsonObject,
  ): Promise<Record<string, Record<string, readonly { rule: string; msg: string }[]>>>;
  satPolicy(
    name: string,
    input: JsonObject,
  ): Promise<
    | { fulfilled: true; targets: readonly { target: string; outputs: Readonly<Record<string, unknown>> }[] }
    | { fulfilled: false; msg: string }
  >;
  replicas(
    input: JsonObject,
  ): Promise<
    | { fulfilled: true; services: Record<string, { service: string; targets: readonly string[] }> }
    | { fulfilled: false; msg: string }
  >;
  sitPolicy(name: string, input: JsonObject): Promise<readonly { msg: string }[]>;
}

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
      for (const [provider, i] of Object.entries(fr.invocation).sort(([a], [b]) => a.localeCompare(b))) {
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
  for (const t of [...req.targets].sort((a, b) => a.key.localeCompare(b.key))) {
    infrastructureTargets[t.key] = { resources: { ...t.resources }, tags: { ...t.tags }, params: t.params ?? {} };
  }
  return {
    required_tags: { ...req.requiredTags },
    services,
    infrastructure_targets: infrastructureTargets,
    stack_instance: req.stackInstance,
  };
}

/** Runs the whole pipeline. Never throws for a policy "no": the plan says `fulfilled: false` with the messages. */
export async function planPlacement(req: PlacementRequest, policies: PlacementPolicies): Promise<PlacementPlan> {
  const input = buildOpaInput(req);
  const allTargets = Object.keys(input.infrastructure_targets as JsonObject);
  const placed = new Map<string, PlacedService>(
    req.services.map((s) => [
      s.alias,
      { alias: s.alias, service: s.serviceName, targets: [], rejections: [], opaOutputs: {} },
    ]),
  );
  const messages: string[] = [];

  // 1. Orchestration (resources and tags), with the reasons for every rejected target.
  const orchestration = await policies.orchestration(input);
  const reasons = await policies.orchestrationRejections(input);
  for (const p of placed.values()) {
    const chosen = orchestration.fulfilled ? [...(orchestration.services[p.alias]?.targets ?? [])].sort() : [];
    p.targets = orchestration.fulfilled
      ? chosen
      : allTargets.filter(
          (t) => Object.keys(reasons[p.alias]?.[t] ?? {}).length === 0 && !reasons[p.alias]?.[t]?.length,
        );
    for (const t of allTargets) {
      if (p.targets.includes(t)) continue;
      const why = reasons[p.alias]?.[t] ?? [];
      if (why.length === 0) {
        p.rejections.push({
          target: t,
          phase: "orchestration",
          policy: "orchestration",
          message: "not selected by the orchestration policy",
        });
      }
      for (const r of why)
        p.rejections.push({ target: t, phase: "orchestration", policy: `orchestration.${r.rule}`, message: r.msg });
    }
  }
  if (!orchestration.fulfilled) messages.push(orchestration.msg);

  // 2. SAT policies filter the candidates of the service each parameter object names.
  for (const [name, paramsList] of Object.entries(req.satPolicies).sort(([a], [b]) => a.localeCompare(b))) {
    for (const parameters of paramsList) {
      const alias = typeof parameters.service === "string" ? parameters.service : "";
      const p = placed.get(alias);
      if (p === undefined) continue;
      const current: JsonObject = {};
      for (const s of placed.values()) current[s.alias] = { service: s.service, targets: s.targets };
      const res = await policies.satPolicy(name, {
        ...input,
        parameters,
        user_parameters: req.userParams,
        replicas: req.replicas,
        services_targets: current,
      });
      if (!res.fulfilled) {
        messages.push(`${name}: ${res.msg}`);
        for (const t of p.targets)
          p.rejections.push({ target: t, phase: "sat_policy", policy: name, message: res.msg });
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
          p.rejections.push({
            target: t,
            phase: "sat_policy",
            policy: name,
            message: `not kept by SAT policy ${name}`,
          });
        }
      }
      p.targets = next;
    }
  }

  // 3. Replicas: the first N candidates (sorted) per service, on distinct targets.
  if (req.applyReplicas) {
    const counts: Record<string, number> = {};
    const services: JsonObject = {};
    for (const p of placed.values()) {
      const keep = new Set(req.preferred?.[p.alias] ?? []);
      p.targets = [...p.targets.filter((t) => keep.has(t)), ...p.targets.filter((t) => !keep.has(t))];
      counts[p.alias] = req.replicas[p.alias] ?? 1;
      services[p.alias] = { service: p.service, targets: p.targets };
    }
    const res = await policies.replicas({ parameters: { services: counts }, services });
    if (!res.fulfilled) {
      messages.push(res.msg);
      for (const p of placed.values()) {
        const want = counts[p.alias] ?? 1;
        if (p.targets.length < want) {
          p.rejections.push({
            target: "*",
            phase: "replicas",
            policy: "replicas",
            message: `${want} replicas need ${want} distinct targets; only ${p.targets.length} qualify`,
          });
        }
      }
    } else {
      for (const p of placed.values()) {
        const keep = new Set(res.services[p.alias]?.targets ?? []);
        for (const t of p.targets) {
          if (!keep.has(t)) {
            p.rejections.push({
              target: t,
              phase: "replicas",
              policy: "replicas",
              message: "beyond the requested replicas",
            });
          }
        }
        p.targets = p.targets.filter((t) => keep.has(t)).sort();
      }
    }
  }

  // 4. SIT policies: every chosen target's own policies (infringements reject the plan).
  if (req.applySitPolicies !== false) {
    const byKey = new Map(req.targets.map((t) => [t.key, t]));
    for (const p of placed.values()) {
      for (const key of p.targets) {
        const target = byKey.get(key);
        for (const [name, parameters] of Object.entries(target?.policies ?? {}).sort(([a], [b]) =>
          a.localeCompare(b),
        )) {
          const infringements = await policies.sitPolicy(name, {
            ...input,
            parameters: parameters as JsonObject,
            stack_instance_params: req.userParams,
            target: key,
          });
          for (const i of infringements) {
            messages.push(`${key}: ${i.msg}`);
            p.rejections.push({ target: key, phase: "sit_policy", policy: name, message: i.msg });
          }
        }
      }
    }
  }

  const services = [...placed.values()];
  for (const p of services)
    p.rejections.sort((a, b) => a.target.localeCompare(b.target) || a.phase.localeCompare(b.phase));
  const unplaced = services.filter((p) => p.targets.length === 0).map((p) => p.alias);
  if (unplaced.length > 0 && messages.length === 0)
    messages.push(`Could not find a target for services ${unplaced.join(", ")}`);
  const sitFailed = services.some((p) => p.rejections.some((r) => r.phase === "sit_policy"));
  const fulfilled = unplaced.length === 0 && messages.length === 0 && !sitFailed;
  return { fulfilled, message: messages.join("\n"), services };
}
