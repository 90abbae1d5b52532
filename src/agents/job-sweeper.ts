import type { Logger } from "pino";
import { sleep } from "../jobs/outbox-relay.js";
import type { AgentRepo } from "../store/agent-repo.js";
import type { JobRepo, LostJobs } from "../store/job-repo.js";
import type { JobDispatcher } from "./job-dispatcher.js";

export interface JobSweeperOptions {
  /** Time between passes. @default 10000 */
  periodMs?: number;
  /** Connected agents with no heartbeat recorded for this long are disconnected (their replica died). @default 30000 */
  staleAfterMs?: number;
}

/**
 * The lease sweep of jobs (every STACKL process runs one; passes are idempotent and use SKIP LOCKED):
 * 1. agents whose replica stopped recording heartbeats (it died holding their streams) become disconnected, and
 *    their jobs start their `lost_after` lease;
 * 2. jobs whose lease lapsed are re-dispatched once (pending, the next claim is epoch + 1), failed with
 *    `agent_lost` on a second loss, or cancelled when cancellation was requested; the doorbell rings for the
 *    re-dispatched ones.
 */
export class JobSweeper {
  private readonly periodMs: number;
  private readonly staleAfterMs: number;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly deps: { agentRepo: AgentRepo; jobRepo: JobRepo; dispatcher: JobDispatcher; logger: Logger },
    opts: JobSweeperOptions = {},
  ) {
    this.periodMs = opts.periodMs ?? 10_000;
    this.staleAfterMs = opts.staleAfterMs ?? 30_000;
  }

  start(signal: AbortSignal): void {
    this.loop ??= this.run(signal);
  }

  async stopped(): Promise<void> {
    await this.loop;
  }

  /** One pass (also used by tests). */
  async sweepOnce(signal?: AbortSignal): Promise<{ staleAgents: string[] } & LostJobs> {
    const staleAgents = await this.deps.agentRepo.sweepStale(this.staleAfterMs, signal);
    if (staleAgents.length > 0) {
      this.deps.logger.warn({ agents: staleAgents }, "agents disconnected: their replica stopped reporting them");
    }
    const lost = await this.deps.jobRepo.sweepLost(1000, signal);
    for (const target of new Set(lost.requeued.map((r) => r.target))) this.deps.dispatcher.ring(target);
    if (lost.requeued.length + lost.failed.length + lost.cancelled.length > 0) {
      this.deps.logger.warn(
        { redispatched: lost.requeued.map((r) => r.id), failed: lost.failed, cancelled: lost.cancelled },
        "jobs lost their agent",
      );
    }
    return { staleAgents, ...lost };
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(this.periodMs, signal);
      if (signal.aborted) return;
      try {
        await this.sweepOnce(signal);
      } catch (err) {
        if (!signal.aborted) this.deps.logger.warn({ err }, "job sweep failed; will try again");
      }
    }
  }
}
