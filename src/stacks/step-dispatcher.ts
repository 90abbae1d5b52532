import type { JsonObject } from "@bufbuild/protobuf";
import type { JobSpec } from "../../gen/stackl/v1/jobs_pb.js";

export type JobEnd = "succeeded" | "failed" | "cancelled" | "timed_out";

export interface JobOutcome {
  state: JobEnd;
  outputs: JsonObject;
  error: string;
}

/** How the run executor runs a step: as a job on the target's agent or pool (AgentService protocol). */
export interface StepDispatcher {
  /**
   * Creates the job of a step's `attempt` (PostgreSQL row; the replica holding a matching agent offers it) and
   * returns its id. Idempotent per (step, attempt): a run that crashed after creating the job gets the same job back
   * instead of a second one, so a step never runs twice.
   */
  start(
    req: { target: string; spec: JobSpec; taskId: string; stepId: string; attempt: number },
    signal: AbortSignal,
  ): Promise<string>;
  /** Resolves when the job is terminal. */
  wait(jobId: string, signal: AbortSignal): Promise<JobOutcome>;
  /** Requests cancellation (graceful, then forced on the agent). */
  cancel(jobId: string, reason: string): Promise<void>;
}
