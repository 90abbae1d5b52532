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
  /** Creates the job (PostgreSQL row; the replica holding a matching agent offers it). Returns its id. */
  start(req: { target: string; spec: JobSpec; taskId: string; stepId: string }, signal: AbortSignal): Promise<string>;
  /** Resolves when the job is terminal. */
  wait(jobId: string, signal: AbortSignal): Promise<JobOutcome>;
  /** Requests cancellation (graceful, then forced on the agent). */
  cancel(jobId: string, reason: string): Promise<void>;
}
