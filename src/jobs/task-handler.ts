import type { Logger } from "pino";
import type { JsonObject } from "../store/document-repo.js";
import type { TaskRow } from "../store/task-repo.js";

/** Why a running task's signal was aborted. */
export type AbortCause = "cancelled" | "timed_out" | "superseded" | "shutdown";

export interface TaskContext {
  readonly task: TaskRow;
  /** Aborted on cancellation, timeout, loss of the claim or worker shutdown; `signal.reason` is an AbortCause. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
}

export interface TaskOutcome {
  result?: JsonObject;
  /**
   * Keys of idempotent effects, recorded with the fenced completion in one transaction: a key can never be
   * recorded twice.
   */
  effects?: string[];
}

/**
 * Runs one task type. Throw a `StacklError` with `retryable: false` for a terminal failure; any other error is
 * retried with backoff until the attempts are used up.
 */
export type TaskHandler = (ctx: TaskContext) => Promise<TaskOutcome | undefined>;

/** Task types and their handlers, per worker process. */
export class TaskRegistry {
  private readonly handlers = new Map<string, TaskHandler>();

  register(type: string, handler: TaskHandler): this {
    if (this.handlers.has(type)) throw new Error(`task type ${type} registered twice`);
    this.handlers.set(type, handler);
    return this;
  }

  get(type: string): TaskHandler | undefined {
    return this.handlers.get(type);
  }

  types(): string[] {
    return [...this.handlers.keys()].sort();
  }
}
