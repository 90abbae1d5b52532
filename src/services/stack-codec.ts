import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  PlacedServiceSchema,
  type Plan,
  PlanSchema,
  type StackInstance,
  StackInstanceSchema,
  StackInstanceState,
  StepStatus,
} from "../../gen/stackl/v1/stack_instances_pb.js";
import type { PlannedStep } from "../domain/stack/step-plan.js";
import type { StackPlan } from "../stacks/stack-planner.js";
import type { StackRow, StackState, StepRow, StepStatus as StoredStepStatus } from "../store/stack-repo.js";

export const STACK_STATE_TO_PROTO: Record<StackState, StackInstanceState> = {
  pending: StackInstanceState.PENDING,
  deploying: StackInstanceState.DEPLOYING,
  ready: StackInstanceState.READY,
  failed: StackInstanceState.FAILED,
  deleting: StackInstanceState.DELETING,
  deleted: StackInstanceState.DELETED,
};

export function stackStateFromProto(s: StackInstanceState, field: string): StackState {
  const found = Object.entries(STACK_STATE_TO_PROTO).find(([, v]) => v === s);
  if (found === undefined) throw new RangeError(`${field}: unknown state ${s}`);
  return found[0] as StackState;
}

const STEP_STATUS: Record<StoredStepStatus, StepStatus> = {
  pending: StepStatus.PENDING,
  running: StepStatus.RUNNING,
  ready: StepStatus.READY,
  failed: StepStatus.FAILED,
  skipped: StepStatus.SKIPPED,
  cancelled: StepStatus.CANCELLED,
};

/** The instance as clients see it: secrets only by name, never their references or values. */
export function stackToProto(row: StackRow, steps: StepRow[], outputs: Map<string, JsonObject>): StackInstance {
  const ts = (d: Date | null) => (d === null ? undefined : timestampFromDate(d));
  const services: StackInstance["services"] = {};
  for (const [alias, list] of Object.entries(row.placement)) {
    services[alias] = {
      $typeName: "stackl.v1.ServiceTargets",
      targets: list.map((p) =>
        create(PlacedServiceSchema, {
          infrastructureTarget: p.target,
          cloudProvider: p.cloudProvider,
          service: p.service,
          agent: p.agent,
          opaOutputs: p.opaOutputs,
          outputs: outputs.get(`${alias}@${p.target}`) ?? {},
          replicaIndex: p.replicaIndex,
          hosts: p.hosts,
          secretNames: Object.keys({ ...row.spec.secrets, ...(row.spec.serviceSecrets[alias] ?? {}) }).sort(),
          provisioningParameters: { ...row.spec.params, ...(row.spec.serviceParams[alias] ?? {}), ...p.opaOutputs },
        }),
      ),
    } as StackInstance["services"][string];
  }
  return create(StackInstanceSchema, {
    name: row.name,
    stackApplicationTemplate: row.sat,
    stackInfrastructureTemplate: row.sit,
    state: STACK_STATE_TO_PROTO[row.state],
    reason: row.reason,
    params: row.spec.params,
    secretNames: Object.keys(row.spec.secrets).sort(),
    serviceParams: row.spec.serviceParams,
    instanceOutputs: row.instanceOutputs,
    services,
    steps: steps.map((s) => ({
      id: s.id,
      service: s.service,
      functionalRequirement: s.fr,
      infrastructureTargets: s.targets,
      status: STEP_STATUS[s.status],
      errorMessage: s.error,
      action: s.action,
      jobId: s.jobId ?? "",
      attempts: s.attempts,
      stageIndex: s.stageIndex,
      startTime: ts(s.startedAt),
      finishTime: ts(s.finishedAt),
      skipReason: s.status === "skipped" ? s.skipReason || s.error : "",
    })),
    stages: row.spec.stages,
    replicas: row.spec.replicas,
    tags: row.spec.tags,
    taskId: row.taskId ?? "",
    generation: BigInt(row.generation),
    createTime: ts(row.createdAt),
    updateTime: ts(row.updatedAt),
    serviceOrder: row.serviceOrder,
    extraServices: row.spec.extraServices,
  });
}

export function planToProto(plan: StackPlan, decisionIds: string[]): Plan {
  return create(PlanSchema, {
    fulfilled: plan.placement.fulfilled,
    message: plan.placement.message,
    services: plan.placement.services.map((s) => ({
      alias: s.alias,
      service: s.service,
      targets: s.targets,
      rejections: summariseRejections(s.rejections),
      opaOutputs: s.opaOutputs,
    })),
    decisionIds,
    steps: plan.steps.map((s: PlannedStep) => ({
      id: s.key,
      service: s.service,
      functionalRequirement: s.functionalRequirement,
      infrastructureTargets: s.targets,
      status: s.skipReason ? StepStatus.SKIPPED : StepStatus.PENDING,
      action: s.action,
      stageIndex: s.stageIndex,
      skipReason: s.skipReason ?? "",
    })),
  });
}

/** Rejections listed per service in API responses; the rest are counted (plans of large estates stay small). */
export const MAX_REJECTIONS_PER_SERVICE = 200;

/**
 * The rejections of one service as the API returns them: candidates only trimmed by the replica count are one
 * summary entry, and at most MAX_REJECTIONS_PER_SERVICE others are listed, with a count of the rest.
 */
export function summariseRejections(
  all: readonly { target: string; phase: string; policy: string; message: string }[],
): { target: string; phase: string; policy: string; message: string }[] {
  const trimmed = all.filter((r) => r.phase === "replicas" && r.target !== "*");
  // Service-wide entries (target "*", e.g. "not enough targets for the replicas") come first: never cut.
  const others = [
    ...all.filter((r) => r.target === "*"),
    ...all.filter((r) => r.target !== "*" && r.phase !== "replicas"),
  ];
  const out = others.slice(0, MAX_REJECTIONS_PER_SERVICE);
  if (others.length > out.length) {
    out.push({
      target: "*",
      phase: "summary",
      policy: "",
      message: `${others.length - out.length} more rejected targets not listed`,
    });
  }
  if (trimmed.length > 0) {
    out.push({
      target: "*",
      phase: "replicas",
      policy: "replicas",
      message: `${trimmed.length} more qualifying targets beyond the requested replicas (first: ${trimmed[0]?.target})`,
    });
  }
  return out;
}
