import { type JsonObject, toJsonString } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  StackInstanceSchema,
  type StackInstanceService,
  type StackInstanceSpec,
} from "../../gen/stackl/v1/stack_instances_pb.js";
import type { Bus } from "../bus/bus.js";
import type { PlannedStep } from "../domain/stack/step-plan.js";
import { ErrorCode, StacklError } from "../errors.js";
import { waitForTask } from "../jobs/task-waiter.js";
import { TASK_CANCEL_SUBJECT } from "../jobs/worker-pool.js";
import { loadStack, type StackRequest } from "../stacks/stack-loader.js";
import { planStack, teardownSteps } from "../stacks/stack-planner.js";
import { requestOf, STACK_RUN_TASK, type StackRunInput } from "../stacks/stack-run.js";
import { type ChangeNotifier, WakeLatch } from "../store/change-notifier.js";
import type { DecisionRepo } from "../store/decision-repo.js";
import type { DocumentRepo } from "../store/document-repo.js";
import {
  type NewStep,
  STACK_CHANGES_CHANNEL,
  type StackRepo,
  type StackRow,
  type StackSpecJson,
  type StepStatus,
} from "../store/stack-repo.js";
import type { TaskRepo, TaskRow } from "../store/task-repo.js";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.js";
import { principalOf } from "./principal.js";
import { planToProto, stackStateFromProto, stackToProto } from "./stack-codec.js";
import { streamSignal } from "./stream-signal.js";
import { taskToProto } from "./task-codec.js";

export interface StackInstanceServiceDeps {
  documents: DocumentRepo;
  stacks: StackRepo;
  tasks: TaskRepo;
  decisions: DecisionRepo;
  notifier: ChangeNotifier;
  bus: Bus;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

function specOf(spec: StackInstanceSpec | undefined): StackRequest {
  if (spec === undefined) throw StacklError.invalid([{ field: "spec", message: "is required" }]);
  const violations = [];
  if (!NAME.test(spec.name))
    violations.push({
      field: "spec.name",
      message: "1-63 letters, digits, '_' or '-', starting with a letter or digit",
    });
  if (spec.stackApplicationTemplate === "")
    violations.push({ field: "spec.stack_application_template", message: "is required" });
  if (spec.stackInfrastructureTemplate === "")
    violations.push({ field: "spec.stack_infrastructure_template", message: "is required" });
  if (violations.length > 0) throw StacklError.invalid(violations);
  return {
    name: spec.name,
    sat: spec.stackApplicationTemplate,
    sit: spec.stackInfrastructureTemplate,
    params: spec.params ?? {},
    secrets: { ...spec.secrets },
    serviceParams: Object.fromEntries(Object.entries(spec.serviceParams).map(([k, v]) => [k, v ?? {}])),
    serviceSecrets: Object.fromEntries(Object.entries(spec.serviceSecrets).map(([k, v]) => [k, { ...v.secrets }])),
    tags: { ...spec.tags },
    replicas: { ...spec.replicas },
    extraServices: spec.services.map((s) => ({ name: s.name, service: s.service })),
    stages: spec.stages.map((s) => ({ name: s.name, services: [...s.services] })),
  };
}

function specJson(req: StackRequest): StackSpecJson {
  return {
    params: req.params,
    secrets: req.secrets,
    serviceParams: req.serviceParams,
    serviceSecrets: req.serviceSecrets,
    tags: req.tags,
    replicas: req.replicas,
    extraServices: req.extraServices,
    stages: req.stages,
  };
}

/** As the original: the template's stages unless the request gives its own. */
function withTemplateStages(
  request: StackRequest,
  loaded: { sat: { stages: { name: string; services: string[] }[] } },
): void {
  if (request.stages.length === 0) {
    request.stages = loaded.sat.stages.map((s) => ({ name: s.name, services: [...s.services] }));
  }
}

function toNewSteps(steps: readonly PlannedStep[]): NewStep[] {
  return steps.map((s) => ({
    key: s.key,
    service: s.service,
    fr: s.functionalRequirement,
    targets: s.targets,
    action: s.action,
    stageIndex: s.stageIndex,
    serviceIndex: s.serviceIndex,
    frIndex: s.frIndex,
    order: s.order,
    skipReason: s.skipReason ?? "",
  }));
}

export function createStackInstanceService(
  deps: StackInstanceServiceDeps,
): Partial<ServiceImpl<typeof StackInstanceService>> {
  const { stacks, documents, tasks, decisions } = deps;

  async function view(name: string, signal: AbortSignal) {
    const row = await stacks.get(name, undefined, signal);
    if (row === undefined) throw StacklError.notFound(`stack instance "${name}"`);
    const [steps, outputs] = await Promise.all([
      stacks.steps(name, row.generation, signal),
      stacks.outputs(name, signal),
    ]);
    return stackToProto(row, steps, outputs);
  }

  /** Writes a new generation (row + steps + its run task) atomically, superseding any run in progress. */
  async function startRun(
    ctx: HandlerContext,
    row: Omit<StackRow, "createdAt" | "updatedAt" | "instanceOutputs" | "taskId">,
    steps: NewStep[],
    run: StackRunInput,
    previousTask: string | null,
  ): Promise<TaskRow> {
    const task = await stacks.tx(async (q) => {
      const t = await tasks.create(
        {
          type: STACK_RUN_TASK,
          input: run as unknown as JsonObject,
          requestedBy: principalOf(ctx),
          stackInstance: row.name,
          maxAttempts: 5,
          timeoutMs: 24 * 3_600_000,
        },
        q,
      );
      await stacks.upsert(q, { ...row, taskId: t.id });
      await stacks.supersedeOlderRuns(q, row.name, row.generation);
      await stacks.insertSteps(q, row.name, row.generation, steps);
      return t;
    }, ctx.signal);
    if (previousTask !== null) {
      const prev = await tasks.requestCancel(previousTask, "superseded by a newer request", ctx.signal);
      if (prev?.state === "running") deps.bus.publish(`${TASK_CANCEL_SUBJECT}.${previousTask}`, new Uint8Array(0));
    }
    return task;
  }

  async function maybeWait(task: TaskRow, wait: { seconds: bigint; nanos: number } | undefined, signal: AbortSignal) {
    const ms = wait === undefined ? 0 : durationMs(wait as Parameters<typeof durationMs>[0]);
    return ms > 0 ? waitForTask({ repo: tasks, notifier: deps.notifier }, task.id, ms, signal) : task;
  }

  return {
    async planStackInstance(req, ctx) {
      const request = specOf(req.spec);
      const loaded = await loadStack(documents, request, ctx.signal);
      withTemplateStages(request, loaded);
      const existing = await stacks.get(request.name, undefined, ctx.signal);
      const previous = existing && existing.state !== "deleted" ? existing.placement : undefined;
      const plan = await planStack(loaded, request, {
        action: previous ? "update" : "create",
        previous,
      });
      const ids = await decisions.record(plan.decisions, ctx.signal);
      return { plan: planToProto(plan, ids) };
    },

    async createStackInstance(req, ctx) {
      const request = specOf(req.spec);
      const existing = await stacks.get(request.name, undefined, ctx.signal);
      if (existing !== undefined && existing.state !== "deleted") {
        throw new StacklError(
          ErrorCode.AlreadyExists,
          `stack instance "${request.name}" already exists; update it instead`,
        );
      }
      const loaded = await loadStack(documents, request, ctx.signal);
      withTemplateStages(request, loaded);
      const plan = await planStack(loaded, request, { action: "create" });
      const ids = await decisions.record(plan.decisions, ctx.signal);
      if (!plan.placement.fulfilled) {
        throw new StacklError(ErrorCode.PolicyRejected, `placement failed: ${plan.placement.message}`, {
          details: { decision_ids: ids },
        });
      }
      const generation = (existing?.generation ?? 0) + 1;
      const task = await startRun(
        ctx,
        {
          name: request.name,
          sat: request.sat,
          sit: request.sit,
          state: "pending",
          reason: "",
          spec: specJson(request),
          placement: plan.services,
          serviceOrder: loaded.order,
          generation,
        },
        toNewSteps(plan.steps),
        { name: request.name, generation, action: "create", force: false },
        null,
      );
      const final = await maybeWait(task, req.wait, ctx.signal);
      return { task: taskToProto(final), instance: await view(request.name, ctx.signal), plan: planToProto(plan, ids) };
    },

    async updateStackInstance(req, ctx) {
      const row = await stacks.get(req.name, undefined, ctx.signal);
      if (row === undefined || row.state === "deleted") throw StacklError.notFound(`stack instance "${req.name}"`);
      if (req.expectedGeneration !== undefined && BigInt(row.generation) !== req.expectedGeneration) {
        throw new StacklError(
          ErrorCode.Conflict,
          `expected generation ${req.expectedGeneration}, the instance is at ${row.generation}`,
        );
      }
      const current = requestOf(row);
      const merge = <T extends object>(a: Record<string, T>, b: Record<string, T>) => {
        const out = { ...a };
        for (const [k, v] of Object.entries(b)) out[k] = { ...(a[k] ?? {}), ...v } as T;
        return out;
      };
      const request: StackRequest = {
        ...current,
        params: { ...current.params, ...(req.params ?? {}) },
        secrets: { ...current.secrets, ...req.secrets },
        serviceParams: merge(
          current.serviceParams,
          Object.fromEntries(Object.entries(req.serviceParams).map(([k, v]) => [k, v ?? {}])),
        ),
        serviceSecrets: merge(
          current.serviceSecrets,
          Object.fromEntries(Object.entries(req.serviceSecrets).map(([k, v]) => [k, { ...v.secrets }])),
        ),
        tags: { ...current.tags, ...req.tags },
        replicas: { ...current.replicas, ...req.replicas },
        // As the original: the request lists the extra services wanted; extras it omits are torn down.
        extraServices: req.services.map((s) => ({ name: s.name, service: s.service })),
        stages:
          req.stages.length > 0 ? req.stages.map((s) => ({ name: s.name, services: [...s.services] })) : current.stages,
      };
      const removedExtras = current.extraServices.filter((e) => !request.extraServices.some((n) => n.name === e.name));
      const loaded = await loadStack(documents, request, ctx.signal);
      const previous = Object.fromEntries(Object.entries(row.placement).filter(([a]) => loaded.order.includes(a)));
      const plan = await planStack(loaded, request, { action: "update", previous });
      let steps = plan.steps;
      const recorded = [...plan.decisions];
      if (removedExtras.length > 0 && plan.placement.fulfilled) {
        const withRemoved = await loadStack(
          documents,
          { ...request, extraServices: [...request.extraServices, ...removedExtras] },
          ctx.signal,
        );
        const gone = Object.fromEntries(removedExtras.map((e) => [e.name, row.placement[e.name] ?? []]));
        const teardown = await teardownSteps(withRemoved, request.name, gone, request.stages);
        recorded.push(...teardown.decisions);
        const shift = teardown.steps.length > 0 ? Math.max(...teardown.steps.map((s) => s.stageIndex)) + 1 : 0;
        steps = [...teardown.steps, ...steps.map((s) => ({ ...s, stageIndex: s.stageIndex + shift }))].map((s, i) => ({
          ...s,
          order: i,
        }));
      }
      const ids = await decisions.record(recorded, ctx.signal);
      if (!plan.placement.fulfilled) {
        throw new StacklError(ErrorCode.PolicyRejected, `placement failed: ${plan.placement.message}`, {
          details: { decision_ids: ids },
        });
      }
      const generation = row.generation + 1;
      const spec = { ...specJson(request), teardown: removedExtras };
      const base = {
        name: row.name,
        sat: row.sat,
        sit: row.sit,
        spec,
        placement: plan.services,
        serviceOrder: loaded.order,
        generation,
      };
      if (req.disableInvocation) {
        // Record the change without running anything: steps keep their last known status.
        const prevSteps = await stacks.steps(row.name, row.generation, ctx.signal);
        await stacks.tx(async (q) => {
          await stacks.upsert(q, {
            ...base,
            state: row.state,
            reason: row.reason,
            taskId: row.taskId,
            spec: specJson(request),
          });
          await stacks.insertSteps(q, row.name, generation, prevSteps);
        }, ctx.signal);
        return { instance: await view(row.name, ctx.signal), plan: planToProto(plan, ids) };
      }
      const task = await startRun(
        ctx,
        { ...base, state: "pending", reason: "" },
        toNewSteps(steps),
        { name: row.name, generation, action: "update", force: false },
        row.taskId,
      );
      const final = await maybeWait(task, req.wait, ctx.signal);
      return { task: taskToProto(final), instance: await view(row.name, ctx.signal), plan: planToProto(plan, ids) };
    },

    async deleteStackInstance(req, ctx) {
      const row = await stacks.get(req.name, undefined, ctx.signal);
      if (row === undefined || row.state === "deleted") throw StacklError.notFound(`stack instance "${req.name}"`);
      const loaded = await loadStack(documents, requestOf(row), ctx.signal);
      const teardown = await teardownSteps(loaded, row.name, row.placement, row.spec.stages);
      await decisions.record(teardown.decisions, ctx.signal);
      const generation = row.generation + 1;
      const task = await startRun(
        ctx,
        { ...row, state: "deleting", reason: "", generation },
        toNewSteps(teardown.steps),
        { name: row.name, generation, action: "delete", force: req.force },
        row.taskId,
      );
      const final = await maybeWait(task, req.wait, ctx.signal);
      return { task: taskToProto(final) };
    },

    async getStackInstance(req, ctx) {
      return { instance: await view(req.name, ctx.signal) };
    },

    async listStackInstances(req, ctx) {
      const limit = pageSize(req.pageSize);
      const after = decodePageToken(
        req.pageToken,
        (v): v is { after: string } => typeof (v as { after?: unknown })?.after === "string",
      );
      const rows = await stacks.list({
        states: req.states.map((s, i) => stackStateFromProto(s, `states[${i}]`)),
        limit: limit + 1,
        after: after?.after,
        signal: ctx.signal,
      });
      const page = rows.slice(0, limit);
      return {
        instances: await Promise.all(page.map((r) => view(r.name, ctx.signal))),
        nextPageToken: rows.length > limit ? encodePageToken({ after: page.at(-1)?.name }) : "",
      };
    },

    async *watchStackInstance(req, ctx) {
      const stream = streamSignal(ctx);
      try {
        const latch = new WakeLatch();
        const unsubscribe = await deps.notifier.subscribe(STACK_CHANGES_CHANNEL, latch.wake);
        try {
          let last = "";
          for (;;) {
            const instance = await view(req.name, stream.signal);
            const stamp = toJsonString(StackInstanceSchema, instance);
            if (stamp !== last) {
              last = stamp;
              yield { instance };
            }
            await latch.wait(stream.signal);
          }
        } finally {
          unsubscribe();
        }
      } catch (err) {
        if (!stream.drained()) throw err;
      }
    },

    async reportOutputs(req, ctx) {
      const row = await stacks.get(req.stackInstance, undefined, ctx.signal);
      if (row === undefined) throw StacklError.notFound(`stack instance "${req.stackInstance}"`);
      const placed = row.placement[req.service];
      if (placed === undefined)
        throw StacklError.invalid([{ field: "service", message: `no service alias "${req.service}" in the instance` }]);
      if (!placed.some((p) => p.target === req.infrastructureTarget)) {
        throw StacklError.invalid([
          { field: "infrastructure_target", message: `${req.service} does not run on "${req.infrastructureTarget}"` },
        ]);
      }
      await stacks.addOutputs(
        req.stackInstance,
        req.service,
        [req.infrastructureTarget],
        req.outputs ?? {},
        ctx.signal,
      );
      return { instance: await view(req.stackInstance, ctx.signal) };
    },

    async retryStackInstance(req, ctx) {
      const row = await stacks.get(req.name, undefined, ctx.signal);
      if (row === undefined) throw StacklError.notFound(`stack instance "${req.name}"`);
      const prev = row.taskId === null ? undefined : await tasks.get(row.taskId, ctx.signal);
      if (prev !== undefined && (prev.state === "pending" || prev.state === "running")) {
        throw new StacklError(ErrorCode.FailedPrecondition, `a run of "${req.name}" is in progress (task ${prev.id})`);
      }
      const steps = await stacks.steps(row.name, row.generation, ctx.signal);
      const action =
        steps.every((s) => s.action === "delete") && steps.length > 0
          ? "delete"
          : steps.some((s) => s.action === "create")
            ? "create"
            : "update";
      const generation = row.generation + 1;
      const task = await startRun(
        ctx,
        { ...row, state: "pending", reason: "", generation },
        steps.map((s) => ({
          ...s,
          status: (s.status === "ready" ? "ready" : s.skipReason ? "skipped" : "pending") as StepStatus,
        })),
        { name: row.name, generation, action, force: false },
        null,
      );
      const final = await maybeWait(task, req.wait, ctx.signal);
      return { task: taskToProto(final) };
    },
  };
}
