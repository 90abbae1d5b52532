import { createHash } from "node:crypto";
import type { JobDispatcher } from "../agents/job-dispatcher.js";
import { UniqueViolationError } from "../store/errors.js";
import type { JobOutcome, StepDispatcher } from "./step-dispatcher.js";

/** Job id of a step's attempt: deterministic, so a re-run after a crash finds the job instead of creating another. */
export function stepJobId(stepId: string, attempt: number): string {
  return `job_s${createHash("sha256").update(`${stepId}#${attempt}`).digest("hex").slice(0, 24)}`;
}

/** Steps run as jobs on agents through the job dispatcher (AgentService protocol, leases, fencing). */
export class AgentStepDispatcher implements StepDispatcher {
  constructor(private readonly jobs: JobDispatcher) {}

  async start(
    req: {
      target: string;
      spec: import("../../gen/stackl/v1/jobs_pb.js").JobSpec;
      taskId: string;
      stepId: string;
      attempt: number;
    },
    signal: AbortSignal,
  ): Promise<string> {
    const id = stepJobId(req.stepId, req.attempt);
    try {
      const job = await this.jobs.createJob(
        undefined,
        { id, target: req.target, spec: req.spec, taskId: req.taskId, stepId: req.stepId, requestedBy: "stackl" },
        signal,
      );
      return job.id;
    } catch (err) {
      if (err instanceof UniqueViolationError) return id;
      throw err;
    }
  }

  async wait(jobId: string, signal: AbortSignal): Promise<JobOutcome> {
    const job = await this.jobs.waitForJob(jobId, { signal });
    const state =
      job.state === "succeeded" || job.state === "failed" || job.state === "cancelled" || job.state === "timed_out"
        ? job.state
        : "failed";
    return { state, outputs: job.outputs ?? {}, error: job.error?.message ?? "" };
  }

  async cancel(jobId: string, reason: string): Promise<void> {
    await this.jobs.cancelJob(jobId, { reason });
  }
}
