import { create, type JsonObject } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type JobSpec, JobSpecSchema } from "../../gen/stackl/v1/jobs_pb.js";
import { mergeParameters, mergeSecrets } from "../domain/stack/service-parameters.js";
import type { AbortCause, TaskContext, TaskHandler, TaskOutcome } from "../jobs/task-handler.js";
import type { DocumentRepo } from "../store/document-repo.js";
import type { RunFence, StackRepo, StackRow, StepRow } from "../store/stack-repo.js";
import { type LoadedStack, loadStack, type StackRequest } from "./stack-loader.js";
import type { StepDispatcher } from "./step-dispatcher.js";

/** The task type that executes a stack instance's run (create, update or delete). */
export const STACK_RUN_TASK = "stack_instance.run";

export interface StackRunInput {
  name: string;
  generation: number;
  action: "create" | "update" | "delete";
  force: boolean;
}

export function requestOf(row: StackRow, extra: { name: string; service: string }[] = []): StackRequest {
  return {
    name: row.name,
    sat: row.sat,
    sit: row.sit,
    params: row.spec.params,
    secrets: row.spec.secrets,
    serviceParams: row.spec.serviceParams,
    serviceSecrets: row.spec.serviceSecrets,
    tags: row.spec.tags,
    replicas: row.spec.replicas,
    extraServices: [...row.spec.extraServices, ...extra],
    stages: row.spec.stages,
  };
}

/**
 * Executes the steps of one generation of a stack instance, as a durable task: every step is a row, dispatched as a
 * job and awaited; a restarted run (another worker claims the task) re-awaits jobs already started and skips steps
 * already done, so nothing runs twice and nothing stays "running" forever.
 */
export function createStackRunHandler(deps: {
  documents: DocumentRepo;
  stacks: StackRepo;
  dispatcher: StepDispatcher;
}): TaskHandler {
  return async (ctx: TaskContext): Promise<TaskOutcome> => {
    const input = ctx.task.input as unknown as StackRunInput;
    const fence: RunFence = { taskId: ctx.task.id, epoch: ctx.task.epoch };
    const log = ctx.logger.child({ stack_instance: input.name, generation: input.generation });
    const row = await deps.stacks.get(input.name, undefined, ctx.signal);
    if (row === undefined || row.generation !== input.generation) {
      log.info("run superseded by a newer request");
      return { result: { superseded: true } };
    }
    const steps = await deps.stacks.steps(input.name, input.generation, ctx.signal);
    // Removed services still need their documents to tear down: load them as extra aliases.
    const loaded = await loadStack(deps.documents, requestOf(row, row.spec.teardown ?? []), ctx.signal);
    await deps.stacks.setState(fence, input.name, input.action === "delete" ? "deleting" : "deploying", "");

    const failures: string[] = [];
    const stages = [...new Set(steps.map((s) => s.stageIndex))].sort((a, b) => a - b);
    let stopped = false;
    for (const stage of stages) {
      const inStage = steps.filter((s) => s.stageIndex === stage);
      if (stopped) {
        await skipAll(deps.stacks, fence, inStage, "an earlier stage failed");
        continue;
      }
      const aliases = [...new Set(inStage.map((s) => s.service))];
      const results = await Promise.all(
        aliases.map((alias) =>
          runService(
            inStage.filter((s) => s.service === alias),
            row,
            loaded,
            input,
            fence,
            deps,
            ctx,
            failures,
          ),
        ),
      );
      if (ctx.signal.aborted) break;
      if (results.some((ok) => !ok) && !input.force) stopped = true;
    }

    if (ctx.signal.aborted) {
      const cause = ctx.signal.reason as AbortCause;
      if (cause === "cancelled" || cause === "timed_out") {
        const pending = (await deps.stacks.steps(input.name, input.generation)).filter((s) => s.status === "pending");
        await skipAll(deps.stacks, fence, pending, `the run was ${cause === "cancelled" ? "cancelled" : "timed out"}`);
        await deps.stacks.setState(fence, input.name, "failed", cause === "cancelled" ? "cancelled" : "timed out");
      }
      ctx.signal.throwIfAborted();
    }
    const reason = failures.join("; ");
    if (input.action === "delete") {
      if (failures.length === 0 || input.force) {
        await deps.stacks.setState(
          fence,
          input.name,
          "deleted",
          input.force && failures.length > 0 ? `force-deleted; failed: ${reason}` : "",
        );
      } else {
        await deps.stacks.setState(fence, input.name, "failed", `delete failed: ${reason}`);
      }
    } else {
      await deps.stacks.setState(fence, input.name, failures.length === 0 ? "ready" : "failed", reason);
    }
    log.info({ failures: failures.length }, "run finished");
    return { result: { failures } };
  };
}

async function skipAll(stacks: StackRepo, fence: RunFence, steps: StepRow[], reason: string): Promise<void> {
  for (const s of steps) {
    if (s.status === "pending")
      await stacks.updateStep(fence, s.id, { status: "skipped", error: reason, finished: true });
  }
}

/** A service's steps: functional requirements in order, the targets of one in parallel; stop at the first failure. */
async function runService(
  steps: StepRow[],
  row: StackRow,
  loaded: LoadedStack,
  input: StackRunInput,
  fence: RunFence,
  deps: { stacks: StackRepo; dispatcher: StepDispatcher },
  ctx: TaskContext,
  failures: string[],
): Promise<boolean> {
  const frIndexes = [...new Set(steps.map((s) => s.frIndex))].sort((a, b) => a - b);
  let ok = true;
  for (const fi of frIndexes) {
    const group = steps.filter((s) => s.frIndex === fi);
    if ((!ok && !input.force) || ctx.signal.aborted) {
      await skipAll(deps.stacks, fence, group, "an earlier functional requirement failed");
      continue;
    }
    const results = await Promise.all(group.map((s) => runStep(s, row, loaded, input, fence, deps, ctx)));
    results.forEach((r, i) => {
      if (r !== undefined) {
        const s = group[i] as StepRow;
        failures.push(`${s.service}/${s.fr} on ${s.targets.join(",")}: ${r}`);
        ok = false;
      }
    });
  }
  return ok;
}

/** Runs one step; resolves with an error message when it failed, undefined when it succeeded or was skipped. */
async function runStep(
  step: StepRow,
  row: StackRow,
  loaded: LoadedStack,
  input: StackRunInput,
  fence: RunFence,
  deps: { stacks: StackRepo; dispatcher: StepDispatcher },
  ctx: TaskContext,
): Promise<string | undefined> {
  if (step.status === "ready" || step.status === "skipped") return undefined;
  let jobId = step.status === "running" ? step.jobId : null;
  if (jobId === null) {
    const built = await buildJobSpec(step, loaded, input, deps.stacks);
    if (typeof built === "string") {
      await deps.stacks.updateStep(fence, step.id, { status: "failed", error: built, started: true, finished: true });
      return built;
    }
    jobId = await deps.dispatcher.start(
      { target: built.target, spec: built.spec, taskId: fence.taskId, stepId: step.id, attempt: step.attempts },
      ctx.signal,
    );
    if (!(await deps.stacks.updateStep(fence, step.id, { status: "running", jobId, started: true }))) {
      await deps.dispatcher.cancel(jobId, "the run was superseded");
      throw new Error("run superseded while dispatching");
    }
  }
  const onAbort = () => {
    const cause = ctx.signal.reason as AbortCause;
    if (cause === "cancelled" || cause === "timed_out")
      void deps.dispatcher.cancel(jobId as string, `stack run ${cause}`);
  };
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  try {
    const outcome = await deps.dispatcher.wait(jobId, ctx.signal);
    if (outcome.state === "succeeded") {
      if (Object.keys(outcome.outputs).length > 0 && step.action !== "delete") {
        await deps.stacks.addOutputs(row.name, step.service, step.targets, outcome.outputs);
      }
      await deps.stacks.updateStep(fence, step.id, { status: "ready", finished: true });
      return undefined;
    }
    const message = outcome.error || `job ${outcome.state}`;
    await deps.stacks.updateStep(fence, step.id, {
      status: outcome.state === "cancelled" ? "cancelled" : "failed",
      error: message,
      finished: true,
    });
    return message;
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
  }
}

/** The job of a step: invocation for the target's cloud provider, merged parameters, secret references, hosts. */
export async function buildJobSpec(
  step: StepRow,
  loaded: LoadedStack,
  input: StackRunInput,
  stacks: StackRepo,
): Promise<{ target: string; spec: JobSpec } | string> {
  const svc = loaded.services.get(step.service);
  const fr = svc?.functionalRequirements.get(step.fr);
  if (svc === undefined || fr === undefined)
    return `functional requirement ${step.fr} of ${step.service} is not loaded`;
  const targetKey = step.targets[0] as string;
  const target = loaded.targets.find((t) => t.key === targetKey);
  if (target === undefined) return `target ${targetKey} is no longer in the stack infrastructure template`;
  const invocation = fr.invocation[target.cloudProvider] ?? fr.invocation.generic;
  if (invocation === undefined) {
    return `no invocation of ${step.fr} for cloud provider "${target.cloudProvider}" (and none for "generic")`;
  }
  const row = (await stacks.get(input.name)) as StackRow;
  const outputs = await stacks.outputs(input.name);
  const placed = row.placement[step.service]?.find((p) => p.target === targetKey);
  const own = outputs.get(`${step.service}@${targetKey}`) ?? {};
  const frs = svc.service.functionalRequirements
    .map((n) => svc.functionalRequirements.get(n))
    .filter((f) => f !== undefined);
  const layers = {
    target,
    service: svc.service,
    functionalRequirements: frs,
    instanceParams: row.spec.params,
    serviceParams: row.spec.serviceParams[step.service] ?? {},
    opaOutputs: placed?.opaOutputs ?? {},
    instanceOutputs: row.instanceOutputs,
    ownOutputs: own,
    instanceSecrets: row.spec.secrets,
    serviceSecrets: row.spec.serviceSecrets[step.service] ?? {},
  };
  const parameters: JsonObject = mergeParameters(layers);
  const hostsFromOutputs = Array.isArray(own.stackl_hosts) ? own.stackl_hosts.map(String) : undefined;
  const hosts =
    hostsFromOutputs ??
    step.targets.flatMap((t) => row.placement[step.service]?.find((p) => p.target === t)?.hosts ?? []);
  if (hosts.length > 0) parameters.machine_names = hosts;
  const timeoutMs = invocation.timeoutSeconds > 0 ? invocation.timeoutSeconds * 1000 : 3_600_000;
  return {
    target: target.agent,
    spec: create(JobSpecSchema, {
      invocation,
      action: step.action,
      parameters,
      secrets: mergeSecrets(layers),
      outputsSpec: fr.outputs,
      functionalRequirement: step.fr,
      service: step.service,
      infrastructureTargets: step.targets,
      stackInstance: input.name,
      hosts,
      timeout: durationFromMs(timeoutMs),
    }),
  };
}
