import { type JsonObject, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ListValueSchema } from "@bufbuild/protobuf/wkt";
import { type PlacementPlan, planPlacement } from "../domain/stack/placement.js";
import {
  intersectFilters,
  type PlannedStep,
  planSteps,
  type StepAction,
  type StepPlanService,
} from "../domain/stack/step-plan.js";
import type { DecisionRecord } from "../store/decision-repo.js";
import type { PlacedTarget } from "../store/stack-repo.js";
import { RecordingPolicies } from "./placement-policies.js";
import type { LoadedStack, StackRequest } from "./stack-loader.js";

export interface StackPlan {
  placement: PlacementPlan;
  /** alias → one entry per replica (target). */
  services: Record<string, PlacedTarget[]>;
  steps: PlannedStep[];
  decisions: DecisionRecord[];
}

export interface PlanOptions {
  action: "create" | "update";
  /** The current placement (update). */
  previous?: Record<string, PlacedTarget[]>;
}

/**
 * Placement plus the steps of the run. On update, targets a service no longer has (scale down, removed extra
 * services, targets that stopped qualifying) are torn down first (delete steps), then every kept or new target runs
 * (`update` where the service already ran, `create` where it is new).
 */
export async function planStack(loaded: LoadedStack, req: StackRequest, opts: PlanOptions): Promise<StackPlan> {
  const policies = new RecordingPolicies(loaded.policyTemplates, { stackInstance: req.name });
  const aliases = loaded.order;
  const previous = opts.previous ?? {};
  const replicas: Record<string, number> = {};
  for (const a of aliases) replicas[a] = req.replicas[a] ?? previous[a]?.length ?? 1;
  const placement = await planPlacement(
    {
      stackInstance: req.name,
      services: aliases.map((a) => {
        const s = loaded.services.get(a);
        if (s === undefined) throw new Error(`unloaded service ${a}`);
        return {
          alias: a,
          serviceName: s.serviceName,
          service: s.service,
          functionalRequirements: s.functionalRequirements,
        };
      }),
      targets: loaded.targets,
      requiredTags: req.tags,
      satPolicies: Object.fromEntries(
        Object.entries(loaded.sat.policies).map(([name, list]) => [
          name,
          (toJson(ListValueSchema, list) as JsonValue[]).filter(
            (v): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v),
          ),
        ]),
      ),
      replicas,
      userParams: req.params,
      applyReplicas: true,
      preferred: Object.fromEntries(Object.entries(previous).map(([a, list]) => [a, list.map((p) => p.target)])),
    },
    policies,
  );

  const byKey = new Map(loaded.targets.map((t) => [t.key, t]));
  const services: Record<string, PlacedTarget[]> = {};
  for (const p of placement.services) {
    const before = new Map((previous[p.alias] ?? []).map((t) => [t.target, t]));
    let nextIndex = Math.max(-1, ...[...before.values()].map((t) => t.replicaIndex)) + 1;
    services[p.alias] = p.targets.map((key) => {
      const target = byKey.get(key);
      const old = before.get(key);
      const replicaIndex = old?.replicaIndex ?? nextIndex++;
      const params = { ...(target?.params ?? {}), ...req.params, ...(req.serviceParams[p.alias] ?? {}) };
      return {
        target: key,
        service: p.service,
        agent: target?.agent ?? "common",
        cloudProvider: target?.cloudProvider ?? "generic",
        replicaIndex,
        opaOutputs: p.opaOutputs[key] ?? {},
        hosts: templateHosts(params, replicaIndex),
      };
    });
  }

  const planServices = (entries: Record<string, PlacedTarget[]>, action: StepAction) =>
    stepServices(loaded, req.name, aliases, entries, action, policies);

  const steps: PlannedStep[] = [];
  if (placement.fulfilled) {
    const removed: Record<string, PlacedTarget[]> = {};
    for (const [alias, list] of Object.entries(previous)) {
      const keep = new Set((services[alias] ?? []).map((t) => t.target));
      const gone = list.filter((t) => !keep.has(t.target));
      if (gone.length > 0) removed[alias] = gone;
    }
    const known = new Set(aliases);
    const removedAliases = Object.keys(removed).filter((a) => !known.has(a));
    if (removedAliases.length > 0) {
      throw new Error(
        "removed aliases must be torn down with their own documents; the update tears removed extra services down with teardownSteps",
      );
    }
    const teardown = planSteps(await planServices(removed, "delete"), aliases, req.stages, "delete");
    const kept: Record<string, PlacedTarget[]> = {};
    const added: Record<string, PlacedTarget[]> = {};
    for (const [alias, list] of Object.entries(services)) {
      const was = new Set((previous[alias] ?? []).map((t) => t.target));
      kept[alias] = list.filter((t) => was.has(t.target));
      added[alias] = list.filter((t) => !was.has(t.target));
    }
    const forward =
      opts.action === "create"
        ? planSteps(await planServices(services, "create"), aliases, req.stages, "create")
        : mergeForward(
            planSteps(await planServices(kept, "update"), aliases, req.stages, "update"),
            planSteps(await planServices(added, "create"), aliases, req.stages, "create"),
            (step) =>
              loaded.services.get(step.service)?.functionalRequirements.get(step.functionalRequirement)?.asGroup ===
              true,
          );
    const stageOffset = teardown.length > 0 ? Math.max(...teardown.map((s) => s.stageIndex)) + 1 : 0;
    for (const s of teardown) steps.push({ ...s, key: `delete:${s.key}` });
    for (const s of forward) steps.push({ ...s, key: `${s.action}:${s.key}`, stageIndex: s.stageIndex + stageOffset });
    steps.forEach((s, i) => {
      s.order = i;
    });
  }
  return { placement, services, steps, decisions: policies.decisions };
}

/**
 * The services of a run with the functional requirements the service policies keep on each target (the
 * intersection of every policy's `filter`, in declared order).
 */
export async function stepServices(
  loaded: LoadedStack,
  stackInstance: string,
  aliases: readonly string[],
  entries: Record<string, PlacedTarget[]>,
  action: StepAction,
  policies: RecordingPolicies,
): Promise<StepPlanService[]> {
  const out: StepPlanService[] = [];
  for (const alias of aliases) {
    const list = entries[alias];
    const s = loaded.services.get(alias);
    if (list === undefined || list.length === 0 || s === undefined) continue;
    const declared = s.service.functionalRequirements;
    let allowed: Map<string, Set<string>> | undefined;
    if (s.service.servicePolicies.length > 0) {
      allowed = new Map();
      for (const t of list) {
        const results: string[][] = [];
        for (const sp of s.service.servicePolicies) {
          results.push([
            ...(await policies.serviceFilter(sp.name, {
              inputs: sp.inputs,
              functional_requirements: declared,
              infrastructure_target: t.target,
              service: alias,
              action,
              stack_instance: stackInstance,
            })),
          ]);
        }
        allowed.set(t.target, intersectFilters(declared, results));
      }
    }
    out.push({
      alias,
      functionalRequirements: declared,
      asGroup: new Set(declared.filter((fr) => s.functionalRequirements.get(fr)?.asGroup)),
      targets: list.map((t) => t.target).sort(),
      ...(allowed === undefined ? {} : { allowed }),
    });
  }
  return out;
}

/** Steps tearing down `entries` (whole instance on delete, or removed services), in exact reverse order. */
export async function teardownSteps(
  loaded: LoadedStack,
  stackInstance: string,
  entries: Record<string, PlacedTarget[]>,
  stages: StackRequest["stages"],
): Promise<{ steps: PlannedStep[]; decisions: DecisionRecord[] }> {
  const policies = new RecordingPolicies(loaded.policyTemplates, { stackInstance });
  const services = await stepServices(loaded, stackInstance, loaded.order, entries, "delete", policies);
  const steps = planSteps(services, loaded.order, stages, "delete").map((s) => ({ ...s, key: `delete:${s.key}` }));
  return { steps, decisions: policies.decisions };
}

/**
 * Update and create steps of the same stage interleave by service and functional requirement position. An as_group
 * functional requirement stays ONE step over all the service's targets (kept and new ones), run as an update.
 */
function mergeForward(
  update: PlannedStep[],
  create: PlannedStep[],
  isGroup: (s: PlannedStep) => boolean,
): PlannedStep[] {
  const merged = [...update];
  // The first group step of each (service, functional requirement) in `merged`: what a linear search would find.
  const groups = new Map<string, PlannedStep>();
  const groupKey = (s: PlannedStep) => `${s.service}\u0000${s.functionalRequirement}`;
  const remember = (s: PlannedStep) => {
    if (isGroup(s) && !groups.has(groupKey(s))) groups.set(groupKey(s), s);
  };
  for (const m of merged) remember(m);
  for (const c of create) {
    const u = isGroup(c) ? groups.get(groupKey(c)) : undefined;
    if (u === undefined) {
      merged.push(c);
      remember(c);
      continue;
    }
    u.targets = [...u.targets, ...c.targets].sort();
    u.key = `${u.service}/${u.functionalRequirement}/${u.targets.join(",")}`;
    if (u.skipReason !== undefined && c.skipReason === undefined) delete u.skipReason;
  }
  return merged.sort(
    (a, b) =>
      a.stageIndex - b.stageIndex || a.serviceIndex - b.serviceIndex || a.frIndex - b.frIndex || a.order - b.order,
  );
}

/** `stackl_hostname` templating: `{ri}` replica index and `{hi}` host index (2 digits, from 01), `instances` hosts. */
export function templateHosts(params: JsonObject, replicaIndex: number): string[] {
  const pattern = params.stackl_hostname;
  if (typeof pattern !== "string" || pattern === "") return [];
  const n = typeof params.instances === "number" && params.instances > 0 ? Math.floor(params.instances) : 1;
  const two = (i: number) => String(i).padStart(2, "0");
  return Array.from({ length: n }, (_, h) =>
    pattern.replaceAll("{ri}", two(replicaIndex + 1)).replaceAll("{hi}", two(h + 1)),
  );
}
