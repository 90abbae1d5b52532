import type { Logger } from "pino";
import type { Bus, WorkConsumer, WorkDelivery } from "../bus/bus.js";
import { ErrorCode, isStacklError, StacklError } from "../errors.js";
import type { TaskError, TaskRepo, TaskRow } from "../store/task-repo.js";
import type { AbortCause, TaskRegistry } from "./task-handler.js";

/** Doorbell subject announcing a cancellation request: `stackl.task.cancel.<task id>`. */
export const TASK_CANCEL_SUBJECT = "stackl.task.cancel";

export interface WorkerPoolOptions {
  /** Work queue consumed. @default "default" */
  queue?: string;
  /** Tasks run at once by this process. @default 4 */
  concurrency?: number;
  /** Lease and JetStream ack wait: a silent worker loses its claim after this. @default 30000 */
  leaseMs?: number;
  /** Lease renewal period while a task runs. @default leaseMs / 3 */
  renewEveryMs?: number;
  /** Deliveries per message before the task fails with `max_deliver_exhausted`. @default 5 */
  maxDeliver?: number;
  /** Retry backoff base and cap for retryable failures. @default 1000 and 30000 */
  retryBaseMs?: number;
  retryCapMs?: number;
  /** Name recorded as the task's worker. @default "<host>:<pid>" */
  name?: string;
}

interface NormalizedOptions {
  queue: string;
  concurrency: number;
  leaseMs: number;
  renewEveryMs: number;
  maxDeliver: number;
  retryBaseMs: number;
  retryCapMs: number;
  name: string;
}

export type WorkerPoolState = "starting" | "running" | "draining" | "stopped" | "failed";

interface Running {
  task: TaskRow;
  controller: AbortController;
}

/**
 * A pool of task executions in this process, sharing one durable consumer with every other worker of the queue.
 * A delivery is only a hint: the task is claimed in PostgreSQL (epoch + 1) and every write is fenced by that epoch;
 * the message is acked only after the worker's own commit.
 */
export class WorkerPool {
  private readonly opts: NormalizedOptions;
  private readonly running = new Map<string, Running>();
  private consumer: WorkConsumer | undefined;
  private unsubscribeCancel: (() => void) | undefined;
  private readonly life = new AbortController();
  #state: WorkerPoolState = "stopped";

  constructor(
    private readonly deps: { bus: Bus; repo: TaskRepo; registry: TaskRegistry; logger: Logger },
    options: WorkerPoolOptions = {},
  ) {
    const leaseMs = options.leaseMs ?? 30_000;
    this.opts = {
      queue: options.queue ?? "default",
      concurrency: options.concurrency ?? 4,
      leaseMs,
      renewEveryMs: options.renewEveryMs ?? Math.max(100, Math.floor(leaseMs / 3)),
      maxDeliver: options.maxDeliver ?? 5,
      retryBaseMs: options.retryBaseMs ?? 1_000,
      retryCapMs: options.retryCapMs ?? 30_000,
      name: options.name ?? `${process.env.HOSTNAME ?? "worker"}:${process.pid}`,
    };
  }

  get state(): WorkerPoolState {
    return this.#state;
  }

  /** Tasks running in this process now. */
  get inFlight(): number {
    return this.running.size;
  }

  private transition(to: WorkerPoolState): void {
    this.deps.logger.info({ queue: this.opts.queue, from: this.#state, to }, "worker pool state");
    this.#state = to;
  }

  async start(): Promise<void> {
    this.transition("starting");
    try {
      this.unsubscribeCancel = this.deps.bus.subscribe(`${TASK_CANCEL_SUBJECT}.*`, (msg) => {
        const id = msg.subject.slice(TASK_CANCEL_SUBJECT.length + 1);
        this.running.get(id)?.controller.abort("cancelled" satisfies AbortCause);
      });
      this.consumer = await this.deps.bus.consumeWork(
        this.opts.queue,
        {
          concurrency: this.opts.concurrency,
          signal: this.life.signal,
          ackWaitMs: this.opts.leaseMs,
          maxDeliver: this.opts.maxDeliver,
          retryDelayMs: (n) => this.backoff(n),
        },
        (d) => this.handle(d),
      );
      this.transition("running");
    } catch (err) {
      this.transition("failed");
      throw err;
    }
  }

  /** Stops taking work; running tasks get `graceMs` to finish, then are handed back (pending again). */
  async stop(graceMs: number): Promise<void> {
    if (this.#state === "stopped" || this.#state === "draining") return;
    this.transition("draining");
    this.unsubscribeCancel?.();
    await this.consumer?.stop({ graceMs });
    this.life.abort();
    this.transition("stopped");
  }

  private backoff(attempt: number): number {
    const exp = Math.min(this.opts.retryCapMs, this.opts.retryBaseMs * 2 ** Math.max(0, attempt - 1));
    return Math.round(exp / 2 + Math.random() * (exp / 2));
  }

  private async handle(d: WorkDelivery): Promise<void> {
    const { repo } = this.deps;
    const claim = await repo.claim(d.id, this.opts.name, this.opts.leaseMs, d.signal);
    switch (claim.kind) {
      case "missing":
      case "terminal":
      case "cancelled":
      case "exhausted":
        await d.ack();
        return;
      case "busy":
        if (d.lastDelivery)
          await d.ack(); // the sweeper re-enqueues if that lease lapses
        else d.nak(claim.leaseMs + 50);
        return;
      case "backoff":
        d.nak(claim.delayMs);
        return;
      case "claimed":
        await this.run(claim.task, d);
        return;
      default: {
        const never: never = claim;
        throw new Error(`unknown claim outcome ${JSON.stringify(never)}`);
      }
    }
  }

  private async run(task: TaskRow, d: WorkDelivery): Promise<void> {
    const { repo, registry } = this.deps;
    const log = this.deps.logger.child({ task: task.id, type: task.type, epoch: task.epoch, attempt: task.attempts });
    const controller = new AbortController();
    const abort = (cause: AbortCause) => {
      if (!controller.signal.aborted) controller.abort(cause);
    };
    this.running.set(task.id, { task, controller });
    const onDeliveryAbort = () => abort("shutdown");
    d.signal.addEventListener("abort", onDeliveryAbort, { once: true });
    const timeout = setTimeout(() => abort("timed_out"), task.timeoutMs);
    const renew = setInterval(() => {
      repo.renew(task.id, task.epoch, this.opts.leaseMs).then(
        ({ cancelRequested }) => cancelRequested && abort("cancelled"),
        (err) => {
          if (isStacklError(err, ErrorCode.StaleEpoch)) abort("superseded");
          else log.warn({ err }, "lease renewal failed");
        },
      );
    }, this.opts.renewEveryMs);
    if (task.cancelRequestedAt !== null) abort("cancelled");
    log.info("task started");
    try {
      const handler = registry.get(task.type);
      if (handler === undefined) {
        throw new StacklError(ErrorCode.Unimplemented, `no handler for task type ${task.type} on queue ${task.queue}`, {
          retryable: false,
        });
      }
      const outcome = await handler({ task, signal: controller.signal, logger: log });
      controller.signal.throwIfAborted();
      await repo.finish(
        task.id,
        task.epoch,
        { state: "succeeded", result: outcome?.result ?? {} },
        { effects: outcome?.effects, worker: this.opts.name },
      );
      log.info("task succeeded");
      await d.ack();
    } catch (err) {
      await this.settleFailure(task, d, controller.signal, err, log);
    } finally {
      clearTimeout(timeout);
      clearInterval(renew);
      d.signal.removeEventListener("abort", onDeliveryAbort);
      this.running.delete(task.id);
    }
  }

  private async settleFailure(
    task: TaskRow,
    d: WorkDelivery,
    signal: AbortSignal,
    err: unknown,
    log: Logger,
  ): Promise<void> {
    const { repo } = this.deps;
    const cause = signal.aborted ? (signal.reason as AbortCause) : undefined;
    try {
      if (isStacklError(err, ErrorCode.StaleEpoch) || cause === "superseded") {
        log.warn("claim superseded by another worker; dropping this attempt's result");
        d.term("superseded");
        return;
      }
      if (cause === "shutdown") {
        await repo.retryLater(
          task.id,
          task.epoch,
          errorOf(err, "worker_shutdown", "handed back at worker shutdown"),
          0,
        );
        d.nak();
        return;
      }
      if (cause === "cancelled" || cause === "timed_out") {
        const reason = cause === "cancelled" ? (await repo.get(task.id))?.cancelReason : undefined;
        const message =
          cause === "cancelled" ? `cancelled: ${reason ?? "on request"}` : `timed out after ${task.timeoutMs} ms`;
        await repo.finish(task.id, task.epoch, { state: cause, error: { code: cause, message, retryable: false } });
        log.info({ cause }, "task stopped");
        await d.ack();
        return;
      }
      const error = errorOf(err, "internal", "task failed");
      if (!error.retryable) {
        await repo.finish(task.id, task.epoch, { state: "failed", error });
        log.warn({ err: error }, "task failed (terminal)");
        d.term(error.message);
        return;
      }
      if (d.lastDelivery || task.attempts >= task.maxAttempts) {
        const reason = d.lastDelivery
          ? `max_deliver exhausted after ${d.deliveryCount} deliveries`
          : `attempts exhausted after ${task.attempts} attempts`;
        await repo.finish(task.id, task.epoch, {
          state: "failed",
          error: { ...error, code: "max_deliver_exhausted", message: `${reason}: ${error.message}`, retryable: false },
        });
        log.warn({ err: error }, reason);
        d.term(reason);
        return;
      }
      const delay = this.backoff(d.deliveryCount);
      await repo.retryLater(task.id, task.epoch, error, delay);
      log.info({ err: error, delay_ms: delay }, "task will be retried");
      d.nak(delay);
    } catch (settleErr) {
      if (isStacklError(settleErr, ErrorCode.StaleEpoch)) {
        log.warn("claim superseded while recording the outcome; dropping it");
        d.term("superseded");
        return;
      }
      // The store is unavailable: leave the delivery unsettled so it comes back after the ack wait.
      log.error({ err: settleErr }, "could not record the task outcome; it will be redelivered");
    }
  }
}

function errorOf(err: unknown, code: string, fallback: string): TaskError {
  if (err instanceof StacklError) return { code: err.code, message: err.message, retryable: err.retryable };
  const message = err instanceof Error ? err.message : fallback;
  return { code, message, retryable: true };
}
