/**
 * The steps of a run: one per functional requirement × target (one per functional requirement for `as_group`),
 * grouped into stages. Execution rules (the run executor follows them):
 * - stages run in order; the services of a stage run in parallel; a failed stage stops the later ones;
 * - without stages every service is its own stage, in the template's order (extra services last) — not alphabetical;
 * - a service's functional requirements run in order; the steps of one functional requirement (its targets) run in
 *   parallel; the first failure stops the service;
 * - delete runs in exact reverse: stages, services and functional requirements reversed.
 */
export type StepAction = "create" | "update" | "delete";

export interface PlannedStep {
  /** Deterministic key: `<alias>/<functional requirement>/<targets joined by ,>`. */
  key: string;
  service: string;
  functionalRequirement: string;
  targets: string[];
  action: StepAction;
  stageIndex: number;
  /** Position of the service inside its stage (services of a stage run in parallel). */
  serviceIndex: number;
  /** Position of the functional requirement inside the service (they run in order). */
  frIndex: number;
  /** Global execution order (for display). */
  order: number;
  /** Set when a service policy filtered the functional requirement out: the step is SKIPPED. */
  skipReason?: string;
}

export interface StepPlanService {
  alias: string;
  /** Functional requirements in declared order. */
  functionalRequirements: string[];
  /** Names of the functional requirements that run with `as_group`. */
  asGroup: ReadonlySet<string>;
  /** Chosen targets (sorted). */
  targets: string[];
  /** Per target: the functional requirements the service policies keep (intersection); undefined = all. */
  allowed?: ReadonlyMap<string, ReadonlySet<string>>;
}

export interface StageSpec {
  name: string;
  services: string[];
}

/** Stages as given, or one stage per service in order. Services listed in no stage run last, in order. */
export function effectiveStages(order: readonly string[], stages: readonly StageSpec[]): string[][] {
  if (stages.length === 0) return order.map((a) => [a]);
  const listed = new Set(stages.flatMap((s) => s.services));
  const result = stages.map((s) => s.services.filter((a) => order.includes(a)));
  const unlisted = order.filter((a) => !listed.has(a));
  if (unlisted.length > 0) result.push(unlisted);
  return result.filter((s) => s.length > 0);
}

export function planSteps(
  services: readonly StepPlanService[],
  order: readonly string[],
  stages: readonly StageSpec[],
  action: StepAction,
): PlannedStep[] {
  const byAlias = new Map(services.map((s) => [s.alias, s]));
  let groups = effectiveStages(order, stages).map((g) => g.filter((a) => byAlias.has(a)));
  if (action === "delete") groups = groups.reverse().map((g) => [...g].reverse());
  const steps: PlannedStep[] = [];
  groups.forEach((aliases, stageIndex) => {
    aliases.forEach((alias, serviceIndex) => {
      const s = byAlias.get(alias) as StepPlanService;
      const frs = action === "delete" ? [...s.functionalRequirements].reverse() : s.functionalRequirements;
      frs.forEach((fr, frIndex) => {
        const allowedOn = (t: string) => s.allowed?.get(t)?.has(fr) ?? true;
        const base = { service: alias, functionalRequirement: fr, action, stageIndex, serviceIndex, frIndex };
        if (s.asGroup.has(fr)) {
          const targets = s.targets.filter(allowedOn);
          const skipped = targets.length === 0 && s.targets.length > 0;
          const all = skipped ? s.targets : targets;
          steps.push({
            ...base,
            key: `${alias}/${fr}/${all.join(",")}`,
            targets: all,
            order: steps.length,
            ...(skipped ? { skipReason: "filtered out by a service policy" } : {}),
          });
          return;
        }
        for (const t of s.targets) {
          steps.push({
            ...base,
            key: `${alias}/${fr}/${t}`,
            targets: [t],
            order: steps.length,
            ...(allowedOn(t) ? {} : { skipReason: "filtered out by a service policy" }),
          });
        }
      });
    });
  });
  return steps;
}

/**
 * The intersection of several service policies' `filter` results, in declared order (the original let the last
 * policy win and sorted the result).
 */
export function intersectFilters(declared: readonly string[], results: readonly (readonly string[])[]): Set<string> {
  return new Set(declared.filter((fr) => results.every((r) => r.includes(fr))));
}
