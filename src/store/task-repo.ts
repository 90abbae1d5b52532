import { randomBytes } from "node:crypto";
import { ErrorCode, StacklError } from "../errors.js";
import type { Db, Queryable } from "./db.js";
import type { JsonObject } from "./document-repo.js";

/** Channel notified (payload: task id) after every task state change. */
export const TASK_CHANGES_CHANNEL = "stackl_tasks";
/** Channel notified when outbox rows are waiting for the relay. */
export const OUTBOX_CHANNEL = "stackl_outbox";

export type TaskState = "pending" | "running" | "succeeded" | "failed" | "cancelled" | "timed_out";
export const TERMINAL_TASK_STATES: readonly TaskState[] = ["succeeded", "failed", "cancelled", "timed_out"];

export interface TaskError {
  code: string;
  message: string;
  retryable: boolean;
  field?: string;
}

export interface TaskRow {
  id: string;
  type: string;
  queue: string;
  state: TaskState;
  input: JsonObject;
  result: JsonObject | null;
  error: TaskError | null;
  attempts: number;
  maxAttempts: number;
  epoch: number;
  timeoutMs: number;
  leaseUntil: Date | null;
  worker: string | null;
  requestedBy: string;
  stackInstance: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
  cancelRequestedAt: Date | null;
  cancelReason: string | null;
}

export interface NewTask {
  type: string;
  /** Work queue (worker pool) that executes it. @default "default" */
  queue?: string;
  input: JsonObject;
  requestedBy: string;
  stackInstance?: string | undefined;
  /** @default 5 */
  maxAttempts?: number;
  /** Wall time per attempt. @default 3_600_000 */
  timeoutMs?: number;
  /** Explicit id (tests, idempotent callers). */
  id?: string;
}

export interface OutboxRow {
  id: number;
  queue: string;
  taskId: string;
  epoch: number;
}

export type ClaimOutcome =
  | { kind: "claimed"; task: TaskRow }
  /** Already terminal: drop the delivery. */
  | { kind: "terminal"; task: TaskRow }
  /** Another worker holds a live lease for `leaseMs` more: look again after it (the sweeper also re-enqueues). */
  | { kind: "busy"; task: TaskRow; leaseMs: number }
  /** Waiting for its retry backoff: deliver again after `delayMs`. */
  | { kind: "backoff"; task: TaskRow; delayMs: number }
  /** Cancellation was requested before it started; it is now cancelled. */
  | { kind: "cancelled"; task: TaskRow }
  /** Attempts used up; it is now failed. */
  | { kind: "exhausted"; task: TaskRow }
  | { kind: "missing" };

export type TaskFinish =
  | { state: "succeeded"; result: JsonObject }
  | { state: "failed" | "cancelled" | "timed_out"; error: TaskError };

export interface ListTasksQuery {
  states?: TaskState[] | undefined;
  type?: string | undefined;
  stackInstance?: string | undefined;
  limit: number;
  /** Keyset: tasks created strictly before this (created_at, id). */
  before?: { createdAt: string; id: string } | undefined;
  signal?: AbortSignal | undefined;
}

const COLUMNS =
  "id, type, queue, state, input, result, error, attempts, max_attempts, epoch, timeout_ms, lease_until, worker, " +
  "requested_by, stack_instance, created_at, started_at, finished_at, updated_at, cancel_requested_at, cancel_reason";

/** A new, roughly time-ordered task id. */
export function newTaskId(): string {
  return `tsk_${Date.now().toString(36).padStart(9, "0")}${randomBytes(6).toString("hex")}`;
}

/** Raised when a write names an epoch that is no longer current: another claim superseded this worker. */
export function staleEpoch(id: string, epoch: number): StacklError {
  return new StacklError(ErrorCode.StaleEpoch, `task ${id}: epoch ${epoch} is stale; another claim superseded it`);
}

/** All SQL for tasks, their outbox and effects. */
export class TaskRepo {
  constructor(private readonly db: Db) {}

  /** Creates a task and its outbox row in one transaction (or inside the caller's transaction `q`). */
  async create(task: NewTask, q?: Queryable, signal?: AbortSignal): Promise<TaskRow> {
    if (q !== undefined) return this.createIn(q, task);
    return this.db.tx((tq) => this.createIn(tq, task), { signal });
  }

  private async createIn(q: Queryable, t: NewTask): Promise<TaskRow> {
    const id = t.id ?? newTaskId();
    const queue = t.queue ?? "default";
    const res = await q.query<Row>(
      `INSERT INTO tasks (id, type, queue, state, input, max_attempts, timeout_ms, requested_by, stack_instance,
                          created_at, updated_at, enqueued_at)
       VALUES ($1, $2, $3, 'pending', $4::jsonb, $5, $6, $7, $8, now(), now(), now())
       RETURNING ${COLUMNS}`,
      [
        id,
        t.type,
        queue,
        JSON.stringify(t.input),
        t.maxAttempts ?? 5,
        t.timeoutMs ?? 3_600_000,
        t.requestedBy,
        t.stackInstance ?? null,
      ],
    );
    await q.query("INSERT INTO task_outbox (queue, task_id, epoch, created_at) VALUES ($1, $2, 0, now())", [queue, id]);
    await q.query("SELECT pg_notify($1, $2), pg_notify($3, '')", [TASK_CHANGES_CHANNEL, id, OUTBOX_CHANNEL]);
    return toTask(res.rows[0] as Row);
  }

  async get(id: string, signal?: AbortSignal): Promise<TaskRow | undefined> {
    const res = await this.db.query<Row>(`SELECT ${COLUMNS} FROM tasks WHERE id = $1`, [id], { signal });
    const row = res.rows[0];
    return row === undefined ? undefined : toTask(row);
  }

  async list(query: ListTasksQuery): Promise<TaskRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace("?", `$${params.length}`));
    };
    if (query.states !== undefined && query.states.length > 0) add("state = ANY(?::text[])", query.states);
    if (query.type) add("type = ?", query.type);
    if (query.stackInstance) add("stack_instance = ?", query.stackInstance);
    if (query.before !== undefined) {
      params.push(query.before.createdAt, query.before.id);
      where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length})`);
    }
    params.push(query.limit);
    const res = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM tasks ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
        ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
      { signal: query.signal },
    );
    return res.rows.map(toTask);
  }

  /**
   * Claims a task for `worker`: epoch + 1, state running, a lease of `leaseMs`. Only a pending task (past its
   * backoff) or a running one whose lease lapsed can be claimed.
   */
  async claim(id: string, worker: string, leaseMs: number, signal?: AbortSignal): Promise<ClaimOutcome> {
    return this.db.tx(
      async (q) => {
        const claimed = await q.query<Row>(
          `UPDATE tasks SET epoch = epoch + 1, state = 'running', attempts = attempts + 1, worker = $2,
                  lease_until = now() + make_interval(secs => $3::double precision / 1000),
                  started_at = coalesce(started_at, now()), updated_at = now(), not_before = NULL
            WHERE id = $1 AND cancel_requested_at IS NULL AND attempts < max_attempts
              AND ((state = 'pending' AND (not_before IS NULL OR not_before <= now()))
                   OR (state = 'running' AND lease_until < now()))
            RETURNING ${COLUMNS}`,
          [id, worker, leaseMs],
        );
        const row = claimed.rows[0];
        if (row !== undefined) {
          await q.query("SELECT pg_notify($1, $2)", [TASK_CHANGES_CHANNEL, id]);
          return { kind: "claimed", task: toTask(row) };
        }
        const cur = await q.query<Row & { backoff_ms: number | null; lease_ms: number | null }>(
          `SELECT ${COLUMNS},
                  CASE WHEN not_before > now() THEN ceil(extract(epoch FROM not_before - now()) * 1000) END AS backoff_ms,
                  CASE WHEN lease_until >= now() THEN ceil(extract(epoch FROM lease_until - now()) * 1000) END AS lease_ms
             FROM tasks WHERE id = $1 FOR UPDATE`,
          [id],
        );
        const c = cur.rows[0];
        if (c === undefined) return { kind: "missing" };
        const task = toTask(c);
        if (TERMINAL_TASK_STATES.includes(task.state)) return { kind: "terminal", task };
        if (task.state === "running" && c.lease_ms !== null) return { kind: "busy", task, leaseMs: Number(c.lease_ms) };
        if (task.cancelRequestedAt !== null) {
          const done = await finishIn(q, id, task.epoch, {
            state: "cancelled",
            error: { code: "cancelled", message: task.cancelReason ?? "cancelled before it started", retryable: false },
          });
          return { kind: "cancelled", task: done ?? task };
        }
        if (task.attempts >= task.maxAttempts) {
          const done = await finishIn(q, id, task.epoch, {
            state: "failed",
            error: {
              code: "attempts_exhausted",
              message: `gave up after ${task.attempts} attempts${task.error ? `: ${task.error.message}` : ""}`,
              retryable: false,
            },
          });
          return { kind: "exhausted", task: done ?? task };
        }
        return { kind: "backoff", task, delayMs: Math.max(1, Number(c.backoff_ms ?? 1)) };
      },
      { signal },
    );
  }

  /** Extends the lease of a running task; throws StaleEpoch when the claim was superseded. */
  async renew(id: string, epoch: number, leaseMs: number, signal?: AbortSignal): Promise<{ cancelRequested: boolean }> {
    const res = await this.db.query<{ cancel_requested_at: Date | null }>(
      `UPDATE tasks SET lease_until = now() + make_interval(secs => $3::double precision / 1000), updated_at = now()
        WHERE id = $1 AND epoch = $2 AND state = 'running' RETURNING cancel_requested_at`,
      [id, epoch, leaseMs],
      { signal },
    );
    const row = res.rows[0];
    if (row === undefined) throw staleEpoch(id, epoch);
    return { cancelRequested: row.cancel_requested_at !== null };
  }

  /**
   * Records a final outcome, fenced by `epoch`, together with idempotent effects (unique keys) in one transaction.
   * Throws StaleEpoch when the claim was superseded.
   */
  async finish(
    id: string,
    epoch: number,
    outcome: TaskFinish,
    opts: { effects?: string[]; worker?: string; signal?: AbortSignal } = {},
  ): Promise<TaskRow> {
    return this.db.tx(
      async (q) => {
        const done = await finishIn(q, id, epoch, outcome);
        if (done === undefined) throw staleEpoch(id, epoch);
        for (const key of opts.effects ?? []) {
          await q.query(
            "INSERT INTO task_effects (effect_key, task_id, epoch, worker, created_at) VALUES ($1, $2, $3, $4, now())",
            [key, id, epoch, opts.worker ?? ""],
          );
        }
        return done;
      },
      { signal: opts.signal },
    );
  }

  /** A retryable failure: back to pending with the error kept, claimable again after `delayMs`. Fenced. */
  async retryLater(id: string, epoch: number, error: TaskError, delayMs: number, signal?: AbortSignal): Promise<void> {
    const res = await this.db.query(
      `UPDATE tasks SET state = 'pending', error = $3::jsonb, worker = NULL, lease_until = NULL, updated_at = now(),
              not_before = now() + make_interval(secs => $4::double precision / 1000), enqueued_at = now()
        WHERE id = $1 AND epoch = $2 AND state = 'running'`,
      [id, epoch, JSON.stringify(error), delayMs],
      { signal },
    );
    if (res.rowCount === 0) throw staleEpoch(id, epoch);
    await this.db.notify(TASK_CHANGES_CHANNEL, id, { signal });
  }

  /**
   * Requests cancellation. A pending task is cancelled at once; a running one keeps running until its worker sees the
   * request (bus doorbell or lease renewal) and finishes it as cancelled. Idempotent.
   */
  async requestCancel(id: string, reason: string, signal?: AbortSignal): Promise<TaskRow | undefined> {
    return this.db.tx(
      async (q) => {
        const res = await q.query<Row>(
          `UPDATE tasks SET cancel_requested_at = coalesce(cancel_requested_at, now()),
                  cancel_reason = coalesce(cancel_reason, $2), updated_at = now(),
                  error = CASE WHEN state = 'pending'
                               THEN jsonb_build_object('code', 'cancelled', 'message', $2::text, 'retryable', false)
                               ELSE error END,
                  finished_at = CASE WHEN state = 'pending' THEN now() ELSE finished_at END,
                  state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END
            WHERE id = $1 RETURNING ${COLUMNS}`,
          [id, reason],
        );
        const row = res.rows[0];
        if (row === undefined) return undefined;
        await q.query("SELECT pg_notify($1, $2)", [TASK_CHANGES_CHANNEL, id]);
        return toTask(row);
      },
      { signal },
    );
  }

  /**
   * The sweeper's pass: running tasks whose lease lapsed go back to pending, and pending tasks whose delivery is
   * older than `republishAfterMs` get a fresh outbox row (a lost message, or a wiped JetStream store).
   */
  async sweep(republishAfterMs: number, signal?: AbortSignal): Promise<{ requeued: number; republished: number }> {
    return this.db.tx(
      async (q) => {
        const lapsed = await q.query<{ id: string; queue: string; epoch: number }>(
          `UPDATE tasks SET state = 'pending', worker = NULL, lease_until = NULL, enqueued_at = now(), updated_at = now()
            WHERE state = 'running' AND lease_until < now() RETURNING id, queue, epoch`,
        );
        const stale = await q.query<{ id: string; queue: string; epoch: number }>(
          `UPDATE tasks SET enqueued_at = now()
            WHERE state = 'pending' AND enqueued_at < now() - make_interval(secs => $1::double precision / 1000)
              AND (not_before IS NULL OR not_before <= now())
            RETURNING id, queue, epoch`,
          [republishAfterMs],
        );
        const rows = [...lapsed.rows, ...stale.rows];
        if (rows.length > 0) {
          await q.query(
            `INSERT INTO task_outbox (queue, task_id, epoch, created_at)
             SELECT r.queue, r.id, r.epoch, now() FROM unnest($1::text[], $2::text[], $3::bigint[]) AS r(queue, id, epoch)`,
            [rows.map((r) => r.queue), rows.map((r) => r.id), rows.map((r) => r.epoch)],
          );
          await q.query("SELECT pg_notify($1, '')", [OUTBOX_CHANNEL]);
        }
        return { requeued: lapsed.rows.length, republished: stale.rows.length };
      },
      { signal },
    );
  }

  /**
   * Takes up to `limit` outbox rows (SKIP LOCKED: relays in several processes never block each other), hands them to
   * `publish`, and deletes them only if `publish` resolves. Returns the number relayed.
   */
  async relayOutbox(
    limit: number,
    publish: (rows: OutboxRow[]) => Promise<void>,
    signal?: AbortSignal,
  ): Promise<number> {
    return this.db.tx(
      async (q) => {
        const res = await q.query<{ id: number; queue: string; task_id: string; epoch: number }>(
          `DELETE FROM task_outbox WHERE id IN (
             SELECT id FROM task_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, queue, task_id, epoch`,
          [limit],
        );
        if (res.rows.length === 0) return 0;
        await publish(
          res.rows.map((r) => ({ id: Number(r.id), queue: r.queue, taskId: r.task_id, epoch: Number(r.epoch) })),
        );
        return res.rows.length;
      },
      { signal },
    );
  }

  /** Number of recorded effects with a key prefix (diagnostics and tests). */
  async countEffects(prefix: string, signal?: AbortSignal): Promise<number> {
    const res = await this.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM task_effects WHERE effect_key LIKE $1",
      [`${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`],
      { signal },
    );
    return Number(res.rows[0]?.n ?? 0);
  }
}

async function finishIn(q: Queryable, id: string, epoch: number, outcome: TaskFinish): Promise<TaskRow | undefined> {
  const res = await q.query<Row>(
    `UPDATE tasks SET state = $3, result = $4::jsonb, error = $5::jsonb, finished_at = now(), updated_at = now(),
            lease_until = NULL
      WHERE id = $1 AND epoch = $2 AND state IN ('pending', 'running') RETURNING ${COLUMNS}`,
    [
      id,
      epoch,
      outcome.state,
      outcome.state === "succeeded" ? JSON.stringify(outcome.result) : null,
      outcome.state === "succeeded" ? null : JSON.stringify(outcome.error),
    ],
  );
  const row = res.rows[0];
  if (row === undefined) return undefined;
  await q.query("SELECT pg_notify($1, $2)", [TASK_CHANGES_CHANNEL, id]);
  return toTask(row);
}

interface Row {
  id: string;
  type: string;
  queue: string;
  state: TaskState;
  input: JsonObject;
  result: JsonObject | null;
  error: TaskError | null;
  attempts: number;
  max_attempts: number;
  epoch: number;
  timeout_ms: number;
  lease_until: Date | null;
  worker: string | null;
  requested_by: string;
  stack_instance: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
  cancel_requested_at: Date | null;
  cancel_reason: string | null;
}

function toTask(r: Row): TaskRow {
  return {
    id: r.id,
    type: r.type,
    queue: r.queue,
    state: r.state,
    input: r.input,
    result: r.result,
    error: r.error,
    attempts: Number(r.attempts),
    maxAttempts: Number(r.max_attempts),
    epoch: Number(r.epoch),
    timeoutMs: Number(r.timeout_ms),
    leaseUntil: r.lease_until,
    worker: r.worker,
    requestedBy: r.requested_by,
    stackInstance: r.stack_instance,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    updatedAt: r.updated_at,
    cancelRequestedAt: r.cancel_requested_at,
    cancelReason: r.cancel_reason,
  };
}
