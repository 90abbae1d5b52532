/**
 * Why a running job is being stopped. Used as the AbortSignal reason of the job, so that the process runner knows
 * the grace period between SIGTERM and SIGKILL and the executor knows the outcome to report.
 *
 * - `cancel`: JobCancel from the server → outcome CANCELLED.
 * - `timeout`: the job's timeout or deadline passed → outcome TIMED_OUT.
 * - `shutdown`: the agent is shutting down and the drain timeout passed → outcome CANCELLED.
 * - `abandon`: the server said not to resume it, or rejected it (stale epoch): nothing is reported.
 */
export type StopKind = "cancel" | "timeout" | "shutdown" | "abandon";

/** Grace between SIGTERM and SIGKILL when the server's JobCancel names none (CancelJobRequest's default). */
export const DEFAULT_STOP_GRACE_MS = 10_000;

export class JobStop extends Error {
  override readonly name = "JobStop";
  constructor(
    readonly kind: StopKind,
    readonly graceMs: number,
    readonly reason: string,
  ) {
    super(`job stopped (${kind}): ${reason}`);
  }
}

/** The grace period carried by an abort reason, or the default. */
export function stopGraceMs(reason: unknown): number {
  return reason instanceof JobStop ? reason.graceMs : DEFAULT_STOP_GRACE_MS;
}
