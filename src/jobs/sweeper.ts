import type { Logger } from "pino";
import type { TaskRepo } from "../store/task-repo.js";
import { sleep } from "./outbox-relay.js";

export interface SweeperOptions {
  /** Time between passes. @default 10000 */
  periodMs?: number;
  /** A pending task whose delivery is older than this is published again (lost message, wiped bus). @default 60000 */
  republishAfterMs?: number;
}

/**
 * Re-enqueues from PostgreSQL what the bus may have lost: running tasks whose lease lapsed (a dead or stalled worker)
 * and pending tasks whose delivery is overdue. With it, losing a worker, a message or the whole JetStream store
 * loses no task.
 */
export class Sweeper {
  private readonly periodMs: number;
  private readonly republishAfterMs: number;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly deps: { repo: TaskRepo; logger: Logger },
    opts: SweeperOptions = {},
  ) {
    this.periodMs = opts.periodMs ?? 10_000;
    this.republishAfterMs = opts.republishAfterMs ?? 60_000;
  }

  start(signal: AbortSignal): void {
    this.loop ??= this.run(signal);
  }

  async stopped(): Promise<void> {
    await this.loop;
  }

  /** One pass (also used by tests). */
  async sweepOnce(signal?: AbortSignal): Promise<{ requeued: number; republished: number }> {
    const res = await this.deps.repo.sweep(this.republishAfterMs, signal);
    if (res.requeued + res.republished > 0) this.deps.logger.info(res, "sweeper re-enqueued tasks");
    return res;
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(this.periodMs, signal);
      if (signal.aborted) return;
      try {
        await this.sweepOnce(signal);
      } catch (err) {
        if (!signal.aborted) this.deps.logger.warn({ err }, "sweep failed; will try again");
      }
    }
  }
}
