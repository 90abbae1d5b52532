import { createHash, randomBytes } from "node:crypto";
import { ErrorCode, StacklError } from "../errors.js";
import type { Db, Queryable } from "./db.js";
import type { JsonObject } from "./document-repo.js";

/** Channel notified (payload: job id) after every job state change. */
export const JOB_CHANGES_CHANNEL = "stackl_jobs";
/** Channel notified (payload: job id) after log chunks of a job were persisted. */
export const JOB_LOGS_CHANNEL = "stackl_job_logs";
/**
 * Channel notified (payload: target) when a job becomes claimable for a target (created, declined, re-dispatched,
 * retried). Sent inside the writing transaction, so it is delivered at commit — also for jobs created inside a
 * caller's transaction.
 */
export const JOB_TARGETS_CHANNEL = "stackl_job_targets";

export type JobState = "pending" | "offered" | "running" | "succeeded" | "failed" | "cancelled" | "timed_out";
export const TERMINAL_JOB_STATES: readonly JobState[] = ["succeeded", "failed", "cancelled", "timed_out"];
export const ACTIVE_JOB_STATES: readonly JobState[] = ["offered", "running"];

export function isTerminalJobState(state: JobState): boolean {
  return TERMINAL_JOB_STATES.includes(state);
}

/** Log bytes kept per job; the chunk crossing it gets a truncation marker, later chunks are stored empty. */
export const DEFAULT_MAX_LOG_BYTES_PER_JOB = 64 * 1024 * 1024;

export interface JobError {
  code: string;
  message: string;
  retryable: boolean;
}

export interface JobRow {
  id: string;
  state: JobState;
  target: string;
  tool: string;
  agent: string | null;
  /** The JobSpec in protobuf JSON form. */
  spec: JsonObject;
  epoch: number;
  attempt: number;
  outputs: JsonObject | null;
  error: JobError | null;
  exitCode: number | null;
  timeoutMs: number;
  lostAfterMs: number;
  leaseUntil: Date | null;
  lastLogSeq: number;
  logBytes: number;
  cancelRequestedAt: Date | null;
  cancelReason: string | null;
  cancelGraceMs: number | null;
  redispatched: boolean;
  taskId: string | null;
  stepId: string | null;
  stackInstance: string | null;
  requestedBy: string;
  createdAt: Date;
  offeredAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
}

export interface NewJob {
  target: string;
  /** Handler the job needs (spec.invocation.tool). */
  tool: string;
  spec: JsonObject;
  timeoutMs: number;
  lostAfterMs: number;
  requestedBy: string;
  taskId?: string | undefined;
  stepId?: string | undefined;
  stackInstance?: string | undefined;
  /** Explicit id (tests, idempotent callers). */
  id?: string | undefined;
}

/** A job claimed for an agent, with the job token of its new epoch (only its hash is stored). */
export interface ClaimedJob {
  job: JobRow;
  jobToken: string;
}

export interface ClaimRequest {
  agent: string;
  /** The claiming session: claims are fenced by the agent row's current session. */
  sessionId: string;
  /** Targets the agent serves: its name and its pool. */
  targets: string[];
  /** Handlers the agent offers. */
  tools: string[];
  /** Most jobs to claim (free capacity as the session sees it). */
  limit: number;
  /** Jobs not to claim (recently declined by this agent). */
  exclude: string[];
}

export interface LogChunkInput {
  jobId: string;
  seq: number;
  stream: number;
  data: Uint8Array;
  epoch: number;
  time: Date;
}

export type AppendLogOutcome =
  | { kind: "persisted"; seq: number }
  /** Already persisted (a resend after a reconnect): ack `lastSeq` again. */
  | { kind: "duplicate"; lastSeq: number }
  /** The writer's epoch or agent is not the job's current one (or the job is not active): reject. */
  | { kind: "stale"; job: JobRow | undefined }
  /** A chunk ahead of the next expected seq. */
  | { kind: "gap"; lastSeq: number };

export interface JobResultInput {
  outcome: "succeeded" | "failed" | "cancelled" | "timed_out";
  outputs: JsonObject;
  error: string;
  exitCode: number;
  lastLogSeq: number;
}

export type FinishOutcome =
  | { kind: "recorded"; job: JobRow }
  /** The same result was recorded before (a resend): confirm it again. */
  | { kind: "duplicate"; job: JobRow }
  | { kind: "stale"; job: JobRow | undefined };

export interface ListJobsQuery {
  states?: JobState[] | undefined;
  target?: string | undefined;
  agent?: string | undefined;
  stackInstance?: string | undefined;
  taskId?: string | undefined;
  limit: number;
  /** Keyset: jobs created strictly before this (created_at, id). */
  before?: { createdAt: string; id: string } | undefined;
  signal?: AbortSignal | undefined;
}

export interface JobLogRow {
  seq: number;
  stream: number;
  data: Uint8Array;
  epoch: number;
  time: Date;
}

/** Jobs found lost (their agent stayed away past `lost_after`), by what happened to them. */
export interface LostJobs {
  /** Back to pending for their one re-dispatch. */
  requeued: { id: string; target: string }[];
  /** Lost a second time: failed with `agent_lost`. */
  failed: string[];
  /** Cancellation was requested: cancelled. */
  cancelled: string[];
}

export interface CancelRequest {
  id: string;
  epoch: number;
  agent: string;
  graceMs: number | null;
  reason: string | null;
}

const COLUMNS =
  "id, state, target, tool, agent, spec, epoch, attempt, outputs, error, exit_code, timeout_ms, lost_after_ms, " +
  "lease_until, last_log_seq, log_bytes, cancel_requested_at, cancel_reason, cancel_grace_ms, redispatched, task_id, " +
  "step_id, stack_instance, requested_by, created_at, offered_at, started_at, finished_at, updated_at";

/** `COLUMNS` qualified with a table alias. */
function columnsOf(alias: string): string {
  return COLUMNS.split(", ")
    .map((c) => `${alias}.${c}`)
    .join(", ");
}

/** A new, roughly time-ordered job id. */
export function newJobId(): string {
  return `job_${Date.now().toString(36).padStart(9, "0")}${randomBytes(6).toString("hex")}`;
}

/** SHA-256 (hex) of a token; only hashes of tokens and credentials are ever stored. */
export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

const TRUNCATION_MARKER = (max: number) =>
  new TextEncoder().encode(
    `\n[stackl] log truncated: the job wrote more than ${Math.round(max / 1024 / 1024)} MiB; ` +
      "further output is dropped (the sequence numbers continue)\n",
  );

/** All SQL for jobs and their logs. */
export class JobRepo {
  private readonly maxLogBytes: number;

  constructor(
    private readonly db: Db,
    opts: { maxLogBytesPerJob?: number } = {},
  ) {
    this.maxLogBytes = opts.maxLogBytesPerJob ?? DEFAULT_MAX_LOG_BYTES_PER_JOB;
  }

  /**
   * Inserts a pending job (in the caller's transaction `q` when given) and notifies `stackl_jobs` and
   * `stackl_job_targets` (delivered at commit).
   */
  async create(job: NewJob, q?: Queryable, signal?: AbortSignal): Promise<JobRow> {
    const res = await (q ?? this.db).query<Row>(
      `WITH ins AS (
         INSERT INTO jobs (id, state, target, tool, spec, timeout_ms, lost_after_ms, task_id, step_id, stack_instance,
                           requested_by, created_at, updated_at)
         VALUES ($1, 'pending', $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, now(), now())
         RETURNING ${COLUMNS})
       SELECT ins.*, pg_notify($11, ins.id), pg_notify($12, ins.target) FROM ins`,
      [
        job.id ?? newJobId(),
        job.target,
        job.tool,
        JSON.stringify(job.spec),
        job.timeoutMs,
        job.lostAfterMs,
        job.taskId ?? null,
        job.stepId ?? null,
        job.stackInstance ?? null,
        job.requestedBy,
        JOB_CHANGES_CHANNEL,
        JOB_TARGETS_CHANNEL,
      ],
      { signal },
    );
    return toJob(res.rows[0] as Row);
  }

  async get(id: string, signal?: AbortSignal): Promise<JobRow | undefined> {
    const res = await this.db.query<Row>(`SELECT ${COLUMNS} FROM jobs WHERE id = $1`, [id], { signal });
    const row = res.rows[0];
    return row === undefined ? undefined : toJob(row);
  }

  async getMany(ids: string[], signal?: AbortSignal): Promise<JobRow[]> {
    if (ids.length === 0) return [];
    const res = await this.db.query<Row>(`SELECT ${COLUMNS} FROM jobs WHERE id = ANY($1::text[])`, [ids], { signal });
    return res.rows.map(toJob);
  }

  async list(query: ListJobsQuery): Promise<JobRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace("?", `$${params.length}`));
    };
    if (query.states !== undefined && query.states.length > 0) add("state = ANY(?::text[])", query.states);
    if (query.target) add("target = ?", query.target);
    if (query.agent) add("agent = ?", query.agent);
    if (query.stackInstance) add("stack_instance = ?", query.stackInstance);
    if (query.taskId) add("task_id = ?", query.taskId);
    if (query.before !== undefined) {
      params.push(query.before.createdAt, query.before.id);
      where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length})`);
    }
    params.push(query.limit);
    const res = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM jobs ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
        ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
      { signal: query.signal },
    );
    return res.rows.map(toJob);
  }

  /** Ids of the jobs offered to or running on each agent. */
  async activeJobIds(agents: string[], signal?: AbortSignal): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (agents.length === 0) return out;
    const res = await this.db.query<{ agent: string; id: string }>(
      `SELECT agent, id FROM jobs WHERE agent = ANY($1::text[]) AND state IN ('offered', 'running')
        ORDER BY created_at, id`,
      [agents],
      { signal },
    );
    for (const r of res.rows) out.set(r.agent, [...(out.get(r.agent) ?? []), r.id]);
    return out;
  }

  /**
   * Claims pending jobs for an agent (DESIGN section 4, "Assignment"): under the agent row's lock and only while
   * `sessionId` is its live session and it is connected (not draining or revoked), up to its free capacity
   * (capacity − offered − running, counted in the database), oldest first, `FOR UPDATE SKIP LOCKED` so replicas
   * never block each other. Each claim: state offered, epoch + 1, attempt + 1, a fresh job token.
   */
  async claim(req: ClaimRequest, signal?: AbortSignal): Promise<ClaimedJob[]> {
    if (req.limit <= 0) return [];
    const tokens = Array.from({ length: req.limit }, () => `sjt_${randomBytes(32).toString("base64url")}`);
    // One statement (no explicit transaction): lock the agent row while its session is live, count what it holds,
    // take the oldest claimable jobs (SKIP LOCKED), give each the hash of a fresh job token, notify.
    const res = await this.db.query<Row & { rn: number }>(
      `WITH a AS (
         SELECT capacity FROM agents WHERE name = $1 AND session_id = $2 AND state = 'connected' FOR UPDATE
       ), busy AS (
         SELECT count(*)::int AS n FROM jobs WHERE agent = $1 AND state IN ('offered', 'running')
       ), c AS (
         SELECT id, row_number() OVER (ORDER BY created_at, id) AS rn FROM (
           SELECT id, created_at FROM jobs
            WHERE state = 'pending' AND target = ANY($3::text[]) AND tool = ANY($4::text[])
              AND cancel_requested_at IS NULL AND NOT (id = ANY($5::text[]))
            ORDER BY created_at, id
            LIMIT greatest(0, least($6::int, coalesce((SELECT capacity FROM a), 0) - (SELECT n FROM busy)))
            FOR UPDATE SKIP LOCKED) s
       ), u AS (
         UPDATE jobs j SET state = 'offered', agent = $1, epoch = j.epoch + 1, attempt = j.attempt + 1,
                offered_at = now(), updated_at = now(), lease_until = NULL, job_token_hash = t.hash
           FROM c JOIN unnest($7::text[]) WITH ORDINALITY AS t(hash, rn) ON t.rn = c.rn
          WHERE j.id = c.id
         RETURNING ${columnsOf("j")}, c.rn
       ), n AS (
         SELECT pg_notify($8, u.id) FROM u
       )
       SELECT u.*, (SELECT count(*) FROM n)::int AS notified FROM u ORDER BY u.rn`,
      [
        req.agent,
        req.sessionId,
        req.targets,
        req.tools,
        req.exclude,
        req.limit,
        tokens.map(sha256Hex),
        JOB_CHANGES_CHANNEL,
      ],
      { signal },
    );
    return res.rows.map((r) => ({ job: toJob(r), jobToken: tokens[Number(r.rn) - 1] as string }));
  }

  /** The agent accepted the offer: running (fenced by epoch and agent). False when stale. */
  async markRunning(id: string, epoch: number, agent: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.db.query<{ id: string }>(
      `WITH u AS (
         UPDATE jobs SET state = 'running', started_at = coalesce(started_at, now()), updated_at = now()
          WHERE id = $1 AND epoch = $2 AND agent = $3 AND state IN ('offered', 'running')
         RETURNING id)
       SELECT u.id, pg_notify($4, u.id) FROM u`,
      [id, epoch, agent, JOB_CHANGES_CHANNEL],
      { signal },
    );
    return res.rows.length > 0;
  }

  /** The agent declined the offer: back to pending (the dispatch is not counted). Returns the target, or undefined. */
  async decline(id: string, epoch: number, agent: string, signal?: AbortSignal): Promise<string | undefined> {
    const res = await this.db.query<{ target: string }>(
      `WITH u AS (
         UPDATE jobs SET state = 'pending', agent = NULL, attempt = greatest(attempt - 1, 0), offered_at = NULL,
                job_token_hash = NULL, updated_at = now()
          WHERE id = $1 AND epoch = $2 AND agent = $3 AND state = 'offered'
         RETURNING id, target)
       SELECT u.target, pg_notify($4, u.id), pg_notify($5, u.target) FROM u`,
      [id, epoch, agent, JOB_CHANGES_CHANNEL, JOB_TARGETS_CHANNEL],
      { signal },
    );
    return res.rows[0]?.target;
  }

  /**
   * Persists one log chunk, fenced by epoch and agent, only if it is the next in sequence; notifies
   * `stackl_job_logs`. One statement (no explicit transaction).
   */
  async appendLog(chunk: LogChunkInput, agent: string, signal?: AbortSignal): Promise<AppendLogOutcome> {
    const marker = TRUNCATION_MARKER(this.maxLogBytes);
    const res = await this.db.query<{
      epoch: number;
      state: JobState;
      agent: string | null;
      last_log_seq: number;
      written: number;
    }>(
      `WITH cur AS (
         SELECT id, epoch, state, agent, last_log_seq, log_bytes FROM jobs WHERE id = $1 FOR UPDATE
       ), upd AS (
         UPDATE jobs j SET last_log_seq = $2, log_bytes = j.log_bytes + octet_length($5::bytea), updated_at = now()
           FROM cur
          WHERE j.id = cur.id AND cur.epoch = $3 AND cur.agent = $7 AND cur.state IN ('offered', 'running')
            AND cur.last_log_seq = $2 - 1
         RETURNING j.id, cur.log_bytes AS before_bytes
       ), ins AS (
         INSERT INTO job_logs (job_id, seq, stream, data, epoch, time)
         SELECT upd.id, $2, $4,
                CASE WHEN upd.before_bytes >= $8 THEN ''::bytea
                     WHEN upd.before_bytes + octet_length($5::bytea) > $8 THEN $5::bytea || $9::bytea
                     ELSE $5::bytea END,
                $3, $6
           FROM upd
         ON CONFLICT (job_id, seq) DO NOTHING
         RETURNING seq
       ), n AS (
         SELECT pg_notify($10, upd.id) FROM upd
       )
       SELECT cur.epoch, cur.state, cur.agent, cur.last_log_seq, (SELECT count(*) FROM upd)::int AS written,
              (SELECT count(*) FROM n)::int AS notified
         FROM cur`,
      [
        chunk.jobId,
        chunk.seq,
        chunk.epoch,
        chunk.stream,
        chunk.data,
        chunk.time,
        agent,
        this.maxLogBytes,
        marker,
        JOB_LOGS_CHANNEL,
      ],
      { signal },
    );
    const cur = res.rows[0];
    if (cur === undefined) return { kind: "stale", job: undefined };
    if (Number(cur.written) > 0) return { kind: "persisted", seq: chunk.seq };
    const lastSeq = Number(cur.last_log_seq);
    const current =
      Number(cur.epoch) === chunk.epoch && cur.agent === agent && ACTIVE_JOB_STATES.includes(cur.state as JobState);
    if (!current) {
      // A resend of a chunk persisted before the job finished at this epoch is harmless: ack it.
      if (Number(cur.epoch) === chunk.epoch && cur.agent === agent && chunk.seq <= lastSeq) {
        return { kind: "duplicate", lastSeq };
      }
      return { kind: "stale", job: await this.get(chunk.jobId, signal) };
    }
    if (chunk.seq <= lastSeq) return { kind: "duplicate", lastSeq };
    return { kind: "gap", lastSeq };
  }

  /**
   * Records an agent's result, fenced by epoch and agent. A result repeated after it was recorded is reported as
   * `duplicate` (confirm it again); anything from a superseded epoch or another agent is `stale`.
   */
  async finish(
    id: string,
    epoch: number,
    agent: string,
    result: JobResultInput,
    signal?: AbortSignal,
  ): Promise<FinishOutcome> {
    const error = resultError(result);
    const res = await this.db.query<Row & { updated: number }>(
      `WITH cur AS (
         SELECT id, epoch, agent, state, cancel_reason FROM jobs WHERE id = $1 FOR UPDATE
       ), u AS (
         UPDATE jobs j SET state = $4, outputs = $5::jsonb, exit_code = $7, finished_at = now(),
                started_at = coalesce(j.started_at, now()), updated_at = now(), lease_until = NULL,
                error = CASE WHEN $4 = 'cancelled' AND cur.cancel_reason IS NOT NULL
                             THEN jsonb_build_object('code', 'cancelled', 'message', cur.cancel_reason, 'retryable', false)
                             ELSE $6::jsonb END
           FROM cur
          WHERE j.id = cur.id AND cur.epoch = $2 AND cur.agent = $3 AND cur.state IN ('offered', 'running')
         RETURNING ${columnsOf("j")}
       ), n AS (
         SELECT pg_notify($8, u.id) FROM u
       )
       SELECT u.*, 1 AS updated, (SELECT count(*) FROM n)::int AS notified FROM u
       UNION ALL
       SELECT j.*, 0 AS updated, 0 AS notified FROM (SELECT ${COLUMNS} FROM jobs WHERE id = $1) j
        WHERE NOT EXISTS (SELECT 1 FROM u)`,
      [
        id,
        epoch,
        agent,
        result.outcome,
        JSON.stringify(result.outputs),
        error === null ? null : JSON.stringify(error),
        result.exitCode,
        JOB_CHANGES_CHANNEL,
      ],
      { signal },
    );
    const row = res.rows[0];
    if (row === undefined) return { kind: "stale", job: undefined };
    const job = toJob(row);
    if (Number(row.updated) === 1) return { kind: "recorded", job };
    if (job.epoch === epoch && job.agent === agent && isTerminalJobState(job.state)) return { kind: "duplicate", job };
    return { kind: "stale", job };
  }

  /**
   * Requests cancellation: a pending job is cancelled at once; an offered or running one records the request
   * (its agent is told; the agent's CANCELLED result ends it). Idempotent; a terminal job is returned unchanged.
   */
  async requestCancel(id: string, reason: string, graceMs: number, signal?: AbortSignal): Promise<JobRow | undefined> {
    return this.db.tx(
      async (q) => {
        const res = await q.query<Row>(
          `UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, now()),
                  cancel_reason = coalesce(cancel_reason, $2), cancel_grace_ms = coalesce(cancel_grace_ms, $3),
                  error = CASE WHEN state = 'pending'
                               THEN jsonb_build_object('code', 'cancelled', 'message', $2::text, 'retryable', false)
                               ELSE error END,
                  finished_at = CASE WHEN state = 'pending' THEN now() ELSE finished_at END,
                  state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END,
                  updated_at = now()
            WHERE id = $1 AND state IN ('pending', 'offered', 'running') RETURNING ${COLUMNS}`,
          [id, reason, graceMs],
        );
        const row = res.rows[0];
        if (row === undefined) {
          const cur = await q.query<Row>(`SELECT ${COLUMNS} FROM jobs WHERE id = $1`, [id]);
          return cur.rows[0] === undefined ? undefined : toJob(cur.rows[0]);
        }
        await q.query("SELECT pg_notify($1, $2)", [JOB_CHANGES_CHANNEL, id]);
        return toJob(row);
      },
      { signal },
    );
  }

  /** A failed, cancelled or timed-out job back to pending for a new attempt (the next claim is epoch + 1). */
  async retry(id: string, signal?: AbortSignal): Promise<JobRow> {
    return this.db.tx(
      async (q) => {
        const res = await q.query<Row>(
          `UPDATE jobs SET state = 'pending', agent = NULL, outputs = NULL, error = NULL, exit_code = NULL,
                  offered_at = NULL, started_at = NULL, finished_at = NULL, lease_until = NULL,
                  cancel_requested_at = NULL, cancel_reason = NULL, cancel_grace_ms = NULL, redispatched = false,
                  job_token_hash = NULL, updated_at = now()
            WHERE id = $1 AND state IN ('failed', 'cancelled', 'timed_out') RETURNING ${COLUMNS}`,
          [id],
        );
        const row = res.rows[0];
        if (row === undefined) {
          const cur = await q.query<{ state: string }>("SELECT state FROM jobs WHERE id = $1", [id]);
          const state = cur.rows[0]?.state;
          if (state === undefined) throw StacklError.notFound(`job ${id}`);
          throw new StacklError(
            ErrorCode.FailedPrecondition,
            `job ${id} is ${state}; only failed, cancelled or timed-out jobs can be retried`,
          );
        }
        const job = toJob(row);
        await q.query("SELECT pg_notify($1, $2), pg_notify($3, $4)", [
          JOB_CHANGES_CHANNEL,
          id,
          JOB_TARGETS_CHANNEL,
          job.target,
        ]);
        return job;
      },
      { signal },
    );
  }

  /**
   * The job a job token belongs to (the token of its current epoch, `STACKL_JOB_TOKEN` in the job's environment)
   * while it is offered or running, or finished less than `graceMs` ago; undefined otherwise. For RPCs a job makes
   * about itself (e.g. reporting outputs): the token dies with the job.
   */
  async jobForToken(
    jobId: string,
    tokenHash: string,
    graceMs = 300_000,
    signal?: AbortSignal,
  ): Promise<JobRow | undefined> {
    const res = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM jobs WHERE id = $1 AND job_token_hash = $2
          AND (state IN ('offered', 'running')
               OR finished_at > now() - make_interval(secs => $3::double precision / 1000))`,
      [jobId, tokenHash, graceMs],
      { signal },
    );
    return res.rows[0] === undefined ? undefined : toJob(res.rows[0]);
  }

  /** Log chunks with seq > `afterSeq`, in order, at most `limit`. */
  async readLogs(id: string, afterSeq: number, limit: number, signal?: AbortSignal): Promise<JobLogRow[]> {
    const res = await this.db.query<{ seq: number; stream: number; data: Uint8Array; epoch: number; time: Date }>(
      "SELECT seq, stream, data, epoch, time FROM job_logs WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
      [id, afterSeq, limit],
      { signal },
    );
    return res.rows.map((r) => ({
      seq: Number(r.seq),
      stream: Number(r.stream),
      data: r.data,
      epoch: Number(r.epoch),
      time: r.time,
    }));
  }

  /** The targets (of `targets`) that have claimable pending jobs for one of `tools`. */
  async pendingTargets(targets: string[], signal?: AbortSignal): Promise<string[]> {
    if (targets.length === 0) return [];
    const res = await this.db.query<{ target: string }>(
      `SELECT DISTINCT target FROM jobs
        WHERE state = 'pending' AND target = ANY($1::text[]) AND cancel_requested_at IS NULL`,
      [targets],
      { signal },
    );
    return res.rows.map((r) => r.target);
  }

  /** Active jobs of these agents with a cancellation request (their agent must be told). */
  async cancelRequests(agents: string[], signal?: AbortSignal): Promise<CancelRequest[]> {
    if (agents.length === 0) return [];
    const res = await this.db.query<{
      id: string;
      epoch: number;
      agent: string;
      cancel_grace_ms: number | null;
      cancel_reason: string | null;
    }>(
      `SELECT id, epoch, agent, cancel_grace_ms, cancel_reason FROM jobs
        WHERE agent = ANY($1::text[]) AND state IN ('offered', 'running') AND cancel_requested_at IS NOT NULL`,
      [agents],
      { signal },
    );
    return res.rows.map((r) => ({
      id: r.id,
      epoch: Number(r.epoch),
      agent: r.agent,
      graceMs: r.cancel_grace_ms === null ? null : Number(r.cancel_grace_ms),
      reason: r.cancel_reason,
    }));
  }

  /**
   * The sweeper's pass over leases: offered/running jobs whose agent stayed disconnected past `lost_after`
   * (`lease_until < now()`) are re-dispatched once (pending), failed with `agent_lost` on a second loss, or
   * cancelled when cancellation was requested.
   */
  async sweepLost(limit = 1000, signal?: AbortSignal): Promise<LostJobs> {
    return this.db.tx(
      async (q) => {
        const res = await q.query<LostRow>(
          `SELECT id, target, agent, redispatched, cancel_requested_at IS NOT NULL AS cancel, cancel_reason
             FROM jobs WHERE state IN ('offered', 'running') AND lease_until < now()
            ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [limit],
        );
        return loseJobsIn(q, res.rows, "its agent stayed disconnected longer than the job's lost_after");
      },
      { signal },
    );
  }
}

export interface LostRow {
  id: string;
  target: string;
  agent: string | null;
  redispatched: boolean;
  cancel: boolean;
  cancel_reason: string | null;
}

/** Applies the loss rules to locked job rows (see `JobRepo.sweepLost`). Notifies at commit. */
export async function loseJobsIn(q: Queryable, rows: LostRow[], why: string): Promise<LostJobs> {
  const out: LostJobs = { requeued: [], failed: [], cancelled: [] };
  if (rows.length === 0) return out;
  const cancel = rows.filter((r) => r.cancel);
  const requeue = rows.filter((r) => !r.cancel && !r.redispatched);
  const fail = rows.filter((r) => !r.cancel && r.redispatched);
  if (cancel.length > 0) {
    await q.query(
      `UPDATE jobs SET state = 'cancelled', finished_at = now(), updated_at = now(), lease_until = NULL,
              error = jsonb_build_object('code', 'cancelled', 'retryable', false,
                        'message', coalesce(cancel_reason, 'cancelled') || ' (the agent never confirmed: ' || $2::text || ')')
        WHERE id = ANY($1::text[])`,
      [cancel.map((r) => r.id), why],
    );
    out.cancelled = cancel.map((r) => r.id);
  }
  if (requeue.length > 0) {
    await q.query(
      `UPDATE jobs SET state = 'pending', agent = NULL, lease_until = NULL, redispatched = true, offered_at = NULL,
              job_token_hash = NULL, updated_at = now(),
              error = jsonb_build_object('code', 'agent_lost', 'retryable', true,
                        'message', 'agent ' || coalesce(agent, '?') || ' was lost (' || $2::text || '); re-dispatched')
        WHERE id = ANY($1::text[])`,
      [requeue.map((r) => r.id), why],
    );
    out.requeued = requeue.map((r) => ({ id: r.id, target: r.target }));
    await q.query("SELECT pg_notify($1, t) FROM (SELECT DISTINCT unnest($2::text[]) AS t) s", [
      JOB_TARGETS_CHANNEL,
      requeue.map((r) => r.target),
    ]);
  }
  if (fail.length > 0) {
    await q.query(
      `UPDATE jobs SET state = 'failed', finished_at = now(), updated_at = now(), lease_until = NULL,
              error = jsonb_build_object('code', 'agent_lost', 'retryable', false,
                        'message', 'agent ' || coalesce(agent, '?') || ' was lost (' || $2::text ||
                                   ') after the job had already been re-dispatched once')
        WHERE id = ANY($1::text[])`,
      [fail.map((r) => r.id), why],
    );
    out.failed = fail.map((r) => r.id);
  }
  await q.query("SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id", [JOB_CHANGES_CHANNEL, rows.map((r) => r.id)]);
  return out;
}

function resultError(result: JobResultInput): JobError | null {
  switch (result.outcome) {
    case "succeeded":
      return null;
    case "failed":
      return {
        code: "job_failed",
        message: result.error || (result.exitCode !== 0 ? `exit code ${result.exitCode}` : "the job failed"),
        retryable: false,
      };
    case "cancelled":
      return { code: "cancelled", message: result.error || "cancelled", retryable: false };
    case "timed_out":
      return { code: "timed_out", message: result.error || "the job timed out", retryable: false };
    default: {
      const never: never = result.outcome;
      throw new RangeError(`unknown outcome ${String(never)}`);
    }
  }
}

interface Row {
  id: string;
  state: JobState;
  target: string;
  tool: string;
  agent: string | null;
  spec: JsonObject;
  epoch: number;
  attempt: number;
  outputs: JsonObject | null;
  error: JobError | null;
  exit_code: number | null;
  timeout_ms: number;
  lost_after_ms: number;
  lease_until: Date | null;
  last_log_seq: number;
  log_bytes: number;
  cancel_requested_at: Date | null;
  cancel_reason: string | null;
  cancel_grace_ms: number | null;
  redispatched: boolean;
  task_id: string | null;
  step_id: string | null;
  stack_instance: string | null;
  requested_by: string;
  created_at: Date;
  offered_at: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

export function toJob(r: Row): JobRow {
  return {
    id: r.id,
    state: r.state,
    target: r.target,
    tool: r.tool,
    agent: r.agent,
    spec: r.spec,
    epoch: Number(r.epoch),
    attempt: Number(r.attempt),
    outputs: r.outputs,
    error: r.error,
    exitCode: r.exit_code === null ? null : Number(r.exit_code),
    timeoutMs: Number(r.timeout_ms),
    lostAfterMs: Number(r.lost_after_ms),
    leaseUntil: r.lease_until,
    lastLogSeq: Number(r.last_log_seq),
    logBytes: Number(r.log_bytes),
    cancelRequestedAt: r.cancel_requested_at,
    cancelReason: r.cancel_reason,
    cancelGraceMs: r.cancel_grace_ms === null ? null : Number(r.cancel_grace_ms),
    redispatched: r.redispatched,
    taskId: r.task_id,
    stepId: r.step_id,
    stackInstance: r.stack_instance,
    requestedBy: r.requested_by,
    createdAt: r.created_at,
    offeredAt: r.offered_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    updatedAt: r.updated_at,
  };
}

export type { Row as JobDbRow };
