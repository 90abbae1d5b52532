import type { Logger } from "pino";
import type { Bus } from "../bus/bus.js";
import { StacklError } from "../errors.js";
import { WakeLatch } from "../store/change-notifier.js";
import type { Queryable } from "../store/db.js";
import { isTerminalJobState, type JobRepo, type JobRow } from "../store/job-repo.js";
import type { AgentsConfig } from "./agents-config.js";
import type { JobEvents } from "./job-events.js";
import { type JobSpecInput, normalizeJobSpec, validateTarget } from "./job-spec.js";
import { encodeName, JOB_CANCEL_SUBJECT, JOB_TARGET_SUBJECT, subjectFor } from "./subjects.js";

/** Grace between SIGTERM and SIGKILL when a cancel names none. */
export const DEFAULT_CANCEL_GRACE_MS = 10_000;

export interface CreateJobInput {
  /** An agent name or a pool. */
  target: string;
  spec: JobSpecInput;
  /** Task and stack-instance step that create the job. */
  taskId?: string | undefined;
  stepId?: string | undefined;
  /** Principal recorded on the job. @default "system" */
  requestedBy?: string | undefined;
  /** Explicit id (idempotent callers). @default a new id */
  id?: string | undefined;
}

export interface JobDispatcherDeps {
  repo: JobRepo;
  bus: Bus;
  events: JobEvents;
  config: AgentsConfig;
  logger: Logger;
}

/**
 * Creating jobs and waiting for them: the entry point for everything that runs work on agents (RunJob, and stack
 * orchestration task handlers). PostgreSQL is the truth: a job is a row; an agent's replica claims it. See
 * `src/agents/README.md`.
 */
export class JobDispatcher {
  constructor(private readonly deps: JobDispatcherDeps) {}

  /**
   * Validates the spec and inserts a pending job. Without `q` it commits at once and rings the bus doorbell for the
   * target. With `q` (the caller's transaction), the job becomes claimable when the caller commits: a NOTIFY sent in
   * that transaction wakes the replicas at commit; call `ring(job.target)` after the commit to ring the bus doorbell
   * too (optional — it only saves the NOTIFY round trip on replicas that missed it; a periodic reconcile covers
   * both). Throws `invalid_argument` for a bad target or spec.
   */
  async createJob(q: Queryable | undefined, input: CreateJobInput, signal?: AbortSignal): Promise<JobRow> {
    validateTarget(input.target);
    const spec = normalizeJobSpec(input.spec, {
      timeoutMs: this.deps.config.jobTimeoutMs,
      lostAfterMs: this.deps.config.lostAfterMs,
    });
    const job = await this.deps.repo.create(
      {
        id: input.id,
        target: input.target,
        tool: spec.tool,
        spec: spec.json,
        timeoutMs: spec.timeoutMs,
        lostAfterMs: spec.lostAfterMs,
        requestedBy: input.requestedBy ?? "system",
        taskId: input.taskId,
        stepId: input.stepId,
        stackInstance: spec.stackInstance,
      },
      q,
      signal,
    );
    if (q === undefined) this.ring(job.target);
    return job;
  }

  /** Rings the "claimable jobs for target" doorbell (fire-and-forget; never throws). */
  ring(target: string): void {
    try {
      this.deps.bus.publish(subjectFor(JOB_TARGET_SUBJECT, target), encodeName(target));
    } catch (err) {
      this.deps.logger.warn({ err, target }, "could not ring the job doorbell (the reconcile loop will find the job)");
    }
  }

  /**
   * Requests cancellation: a pending job ends cancelled at once; an offered or running one is cancelled by its
   * agent (SIGTERM, then SIGKILL after `graceMs`) and ends `cancelled` when the agent confirms — or after its
   * `lost_after` when the agent is gone. Idempotent. Throws `not_found`.
   */
  async cancelJob(id: string, opts: { reason: string; graceMs?: number; signal?: AbortSignal }): Promise<JobRow> {
    const job = await this.deps.repo.requestCancel(
      id,
      opts.reason,
      opts.graceMs ?? DEFAULT_CANCEL_GRACE_MS,
      opts.signal,
    );
    if (job === undefined) throw StacklError.notFound(`job ${id}`);
    if (job.state === "offered" || job.state === "running") {
      try {
        this.deps.bus.publish(subjectFor(JOB_CANCEL_SUBJECT, id), encodeName(id));
      } catch (err) {
        this.deps.logger.warn({ err, job: id }, "could not ring the cancel doorbell (the reconcile loop will)");
      }
    }
    return job;
  }

  /** A failed, cancelled or timed-out job back to pending (new attempt; its next claim is epoch + 1). */
  async retryJob(id: string, signal?: AbortSignal): Promise<JobRow> {
    const job = await this.deps.repo.retry(id, signal);
    this.ring(job.target);
    return job;
  }

  /**
   * Yields the job now and after every change (woken by NOTIFY on `stackl_jobs`, never by polling) until it is
   * terminal or `signal` aborts. Changes between two reads are coalesced.
   */
  async *watchJob(id: string, signal: AbortSignal): AsyncGenerator<JobRow> {
    const latch = new WakeLatch();
    const unsubscribe = await this.deps.events.subscribe("changes", id, latch.wake);
    try {
      let last = "";
      for (;;) {
        const job = await this.deps.repo.get(id, signal);
        if (job === undefined) throw StacklError.notFound(`job ${id}`);
        const stamp = `${job.state}|${job.epoch}|${job.updatedAt.getTime()}|${job.attempt}`;
        if (stamp !== last) {
          last = stamp;
          yield job;
        }
        if (isTerminalJobState(job.state)) return;
        await latch.wait(signal);
      }
    } finally {
      unsubscribe();
    }
  }

  /**
   * The job once terminal, or as it is when `timeoutMs` passes or `signal` aborts (check `state`). Throws
   * `not_found` for an unknown job.
   */
  async waitForJob(id: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<JobRow> {
    const signals = [opts.signal, opts.timeoutMs === undefined ? undefined : AbortSignal.timeout(opts.timeoutMs)];
    const deadline = AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
    let latest: JobRow | undefined;
    try {
      for await (const job of this.watchJob(id, deadline)) latest = job;
    } catch (err) {
      if (!deadline.aborted || latest === undefined) throw err;
    }
    if (latest === undefined) throw StacklError.notFound(`job ${id}`);
    if (!isTerminalJobState(latest.state)) latest = (await this.deps.repo.get(id)) ?? latest;
    return latest;
  }

  /** Every job once terminal (or as they are when the wait ends), in the order of `ids`. */
  async waitForJobs(ids: string[], opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<JobRow[]> {
    return Promise.all(ids.map((id) => this.waitForJob(id, opts)));
  }
}
