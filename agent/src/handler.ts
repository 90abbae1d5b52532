import type { JsonObject } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import type { JobSpec } from "../../gen/stackl/v1/jobs_pb.js";

/** The handlers an agent can offer. `terraform` is the tofu handler running the `terraform` binary. */
export const HANDLER_NAMES = ["shell", "tofu", "terraform", "ansible", "mock"] as const;
export type HandlerName = (typeof HANDLER_NAMES)[number];

export function isHandlerName(name: string): name is HandlerName {
  return (HANDLER_NAMES as readonly string[]).includes(name);
}

/**
 * Where a piece of output came from. `system` is text written by the agent itself (complete lines; the executor
 * prefixes each with `[stackl-agent] `).
 */
export type LogStreamName = "stdout" | "stderr" | "system";

/**
 * Writes output to the job's log (masked, sequenced, sent to the server). A returned promise means "the log buffer
 * is full": the caller should stop reading its source until it settles.
 */
export type LogFn = (stream: LogStreamName, data: Uint8Array | string) => void | Promise<void>;

/** What a handler gets for one job. */
export interface HandlerJob {
  readonly id: string;
  readonly epoch: bigint;
  readonly spec: JobSpec;
  /**
   * Persistent working directory of this (stack instance, service, functional requirement, targets), kept between
   * jobs so that e.g. tofu state survives from create to delete.
   */
  readonly workDir: string;
  /** Scratch directory of this job, removed when the job ends (parameter, secret and output files). */
  readonly jobDir: string;
  /** The agent's `--work-dir`; relative paths in the invocation resolve against it. */
  readonly agentWorkDir: string;
  /** Base environment for processes of the job (the agent's, minus its own STACKL_AGENT_* settings). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Resolved secret values by name. */
  readonly secrets: ReadonlyMap<string, string>;
  /** Aborts on cancel, timeout or shutdown; the reason is a JobStop. */
  readonly signal: AbortSignal;
  readonly log: LogFn;
  readonly logger: Logger;
  /** Called with the pid (= process group id) of every process the handler starts. */
  readonly onProcess: (pid: number) => void;
  /** Token scoped to this job and epoch (JobOffer.job_token); "" when the server sent none. */
  readonly jobToken: string;
  /** The control plane URL the agent is connected to. */
  readonly serverUrl: string;
}

export interface HandlerResult {
  /** The tool's raw outputs; the executor maps them through the job's outputs spec. */
  outputs: JsonObject;
  /** 0 = success. */
  exitCode: number;
  /** Error text for a non-zero exit (default: "<tool> exited with code N"). */
  error?: string;
}

export interface Handler {
  readonly name: HandlerName;
  run(job: HandlerJob): Promise<HandlerResult>;
}

/** A failure the handler detected itself (bad invocation, missing file); reported as the job's error. */
export class HandlerError extends Error {
  override readonly name = "HandlerError";
  constructor(
    message: string,
    readonly exitCode = -1,
  ) {
    super(message);
  }
}
