/**
 * Infrastructure targets of a stack infrastructure template, merged from environment, location and zone exactly as
 * the original `StackHandler._update_infr_capabilities` does (reference section 1.2):
 * - params, secrets, tags and policies: shallow merge by key, zone over location over environment (policies by name,
 *   the whole parameter object of the winning layer);
 * - cloud_provider and agent: first non-empty of zone, location, environment; defaults `generic` and `common`;
 * - resources: the environment's only;
 * - key `<environment>.<location>.<zone>`.
 * Computed on read; never written back into the user's document.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import type {
  InfrastructureLayer,
  InfrastructureTarget,
  InfrastructureTargetRef,
  StackInfrastructureTemplate,
} from "../../gen/stackl/v1/documents_pb.js";
import { InfrastructureTargetSchema } from "../../gen/stackl/v1/documents_pb.js";
import type { FieldViolation } from "../errors.js";
import { fieldPath, indexPath } from "./field-path.js";

/** Cloud provider of a target when no layer names one. */
export const DEFAULT_CLOUD_PROVIDER = "generic";
/** Agent of a target when no layer names one. */
export const DEFAULT_AGENT = "common";

/** Looks up the current environment, location and zone documents by name. */
export interface InfrastructureLayers {
  environment(name: string): InfrastructureLayer | undefined;
  location(name: string): InfrastructureLayer | undefined;
  zone(name: string): InfrastructureLayer | undefined;
}

export interface ComputedTargets {
  /** One per distinct key whose three layers exist, sorted by key. */
  targets: InfrastructureTarget[];
  /** One per missing layer document, naming the field that references it. */
  violations: FieldViolation[];
}

/** `<environment>.<location>.<zone>`. */
export function targetKey(ref: Pick<InfrastructureTargetRef, "environment" | "location" | "zone">): string {
  return `${ref.environment}.${ref.location}.${ref.zone}`;
}

/**
 * The targets of `sit`. A reference whose environment, location or zone does not exist yields no target and one
 * violation per missing document at `path.infrastructure_targets[i].<layer>`.
 */
export function computeTargets(
  sit: StackInfrastructureTemplate,
  layers: InfrastructureLayers,
  path = "stack_infrastructure_template",
): ComputedTargets {
  const byKey = new Map<string, InfrastructureTarget>();
  const violations: FieldViolation[] = [];
  for (const [index, ref] of sit.infrastructureTargets.entries()) {
    const at = indexPath(fieldPath(path, "infrastructure_targets"), index);
    const environment = layers.environment(ref.environment);
    const location = layers.location(ref.location);
    const zone = layers.zone(ref.zone);
    const missing = (layer: "environment" | "location" | "zone", name: string): void => {
      violations.push({ field: fieldPath(at, layer), message: `${layer} ${JSON.stringify(name)} does not exist` });
    };
    if (environment === undefined) missing("environment", ref.environment);
    if (location === undefined) missing("location", ref.location);
    if (zone === undefined) missing("zone", ref.zone);
    if (environment === undefined || location === undefined || zone === undefined) continue;
    const key = targetKey(ref);
    if (!byKey.has(key)) byKey.set(key, mergeTarget(ref, environment, location, zone));
  }
  const targets = [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, target]) => target);
  return { targets, violations };
}

/** One target from its three layers. */
export function mergeTarget(
  ref: Pick<InfrastructureTargetRef, "environment" | "location" | "zone">,
  environment: InfrastructureLayer,
  location: InfrastructureLayer,
  zone: InfrastructureLayer,
): InfrastructureTarget {
  const ordered = [environment, location, zone] as const;
  return create(InfrastructureTargetSchema, {
    key: targetKey(ref),
    environment: ref.environment,
    location: ref.location,
    zone: ref.zone,
    params: mergeShallow(ordered.map((layer) => layer.params ?? {})) as JsonObject,
    secrets: mergeShallow(ordered.map((layer) => layer.secrets)),
    resources: mergeShallow([environment.resources]),
    policies: mergeShallow(ordered.map((layer) => layer.policies)),
    tags: mergeShallow(ordered.map((layer) => layer.tags)),
    cloudProvider:
      firstNonEmpty([zone.cloudProvider, location.cloudProvider, environment.cloudProvider]) ?? DEFAULT_CLOUD_PROVIDER,
    agent: firstNonEmpty([zone.agent, location.agent, environment.agent]) ?? DEFAULT_AGENT,
  });
}

/** `{...maps[0], ...maps[1], ...}`: later maps win key by key; values are not merged deeper. */
function mergeShallow<T>(maps: ReadonlyArray<Readonly<Record<string, T>>>): Record<string, T> {
  const merged = new Map<string, T>();
  for (const map of maps) {
    for (const [key, value] of Object.entries(map)) merged.set(key, value);
  }
  // A copy, so the target never aliases (and a later edit never changes) a layer document.
  return structuredClone(Object.fromEntries(merged));
}

function firstNonEmpty(values: readonly string[]): string | undefined {
  return values.find((value) => value !== "");
}
