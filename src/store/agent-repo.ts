import { randomBytes } from "node:crypto";
import { ErrorCode, StacklError } from "../errors.js";
import type { Db, Queryable } from "./db.js";
import {
  ACTIVE_JOB_STATES,
  isTerminalJobState,
  JOB_CHANGES_CHANNEL,
  JOB_TARGETS_CHANNEL,
  type JobState,
  type LostRow,
  loseJobsIn,
} from "./job-repo.js";

export type AgentState = "connected" | "disconnected" | "draining" | "revoked";

export interface AgentRow {
  name: string;
  pool: string;
  labels: Record<string, string>;
  version: string;
  handlers: string[];
  capacity: number;
  state: AgentState;
  replica: string | null;
  sessionId: string | null;
  connectedAt: Date | null;
  disconnectedAt: Date | null;
  lastHeartbeatAt: Date | null;
  drainRequestedAt: Date | null;
  revokedAt: Date | null;
  revokeReason: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewEnrollmentToken {
  /** Public id (for audit); the secret part is only in `token`. */
  id: string;
  /** SHA-256 of the whole token. */
  hash: string;
  pool: string;
  agentName?: string | undefined;
  labels: Record<string, string>;
  ttlMs: number;
  createdBy: string;
}

/** A job an agent reports in its Hello. */
export interface ReportedJob {
  jobId: string;
  epoch: number;
  /** 0 = unknown. */
  nextLogSeq: number;
  finished: boolean;
}

export interface OpenSessionInput {
  /** From Hello. */
  name: string;
  pool: string;
  labels: Record<string, string>;
  version: string;
  handlers: string[];
  capacity: number;
  jobsInFlight: ReportedJob[];
  auth:
    | { kind: "credential"; hash: string }
    /** Enrollment: the token's hash, and the hash of the new credential to store. */
    | { kind: "token"; hash: string; credentialHash: string };
  replica: string;
  sessionId: string;
}

/** The answer about one job reported in Hello; `undefined` decision = say nothing (the agent forgets it). */
export interface ResumeDecisionRow {
  jobId: string;
  epoch: number;
  resume: boolean;
  reason: string;
  nextLogSeq: number;
}

export interface OpenedSession {
  agent: AgentRow;
  enrolled: boolean;
  decisions: ResumeDecisionRow[];
  /** Jobs this session holds from the start (resumed), with their state. */
  resumed: {
    id: string;
    epoch: number;
    state: JobState;
    cancel: { graceMs: number | null; reason: string | null } | null;
  }[];
  /** Targets that got claimable jobs back (jobs the agent no longer holds). */
  requeuedTargets: string[];
}

export interface RevokeResult {
  agent: AgentRow;
  /** Jobs that went back to pending. */
  requeued: { id: string; target: string; epoch: number }[];
  /** Jobs with a cancellation request, now cancelled. */
  cancelled: string[];
}

export interface ListAgentsQuery {
  pool?: string | undefined;
  states?: AgentState[] | undefined;
  limit: number;
  /** Keyset: agents with a name after this one. */
  after?: string | undefined;
  signal?: AbortSignal | undefined;
}

const COLUMNS =
  "name, pool, labels, version, handlers, capacity, state, replica, session_id, connected_at, disconnected_at, " +
  "last_heartbeat_at, drain_requested_at, revoked_at, revoke_reason, created_at, updated_at";

/** A new public id for an enrollment token. */
export function newTokenId(): string {
  return `enr_${randomBytes(8).toString("hex")}`;
}

function unauthenticated(message: string): StacklError {
  return new StacklError(ErrorCode.Unauthenticated, message);
}

function denied(message: string): StacklError {
  return new StacklError(ErrorCode.PermissionDenied, message);
}

/** All SQL for agents and enrollment tokens, including the job bookkeeping a session's start and end imply. */
export class AgentRepo {
  constructor(private readonly db: Db) {}

  async createToken(t: NewEnrollmentToken, signal?: AbortSignal): Promise<{ id: string; expiresAt: Date }> {
    const res = await this.db.query<{ expires_at: Date }>(
      `INSERT INTO enrollment_tokens (id, hash, pool, agent_name, labels, created_by, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6, now(), now() + make_interval(secs => $7::double precision / 1000))
       RETURNING expires_at`,
      [t.id, t.hash, t.pool, t.agentName ?? null, JSON.stringify(t.labels), t.createdBy, t.ttlMs],
      { signal },
    );
    return { id: t.id, expiresAt: (res.rows[0] as { expires_at: Date }).expires_at };
  }

  async get(name: string, signal?: AbortSignal): Promise<AgentRow | undefined> {
    const res = await this.db.query<Row>(`SELECT ${COLUMNS} FROM agents WHERE name = $1`, [name], { signal });
    return res.rows[0] === undefined ? undefined : toAgent(res.rows[0]);
  }

  async list(query: ListAgentsQuery): Promise<AgentRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace("?", `$${params.length}`));
    };
    if (query.pool) add("pool = ?", query.pool);
    if (query.states !== undefined && query.states.length > 0) add("state = ANY(?::text[])", query.states);
    if (query.after !== undefined) add("name > ?", query.after);
    params.push(query.limit);
    const res = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM agents ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
        ORDER BY name LIMIT $${params.length}`,
      params,
      { signal: query.signal },
    );
    return res.rows.map(toAgent);
  }

  /** True when `name` exists, is not revoked and its stored credential hash is `hash`. */
  async credentialValid(name: string, hash: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.db.query<{ ok: boolean }>(
      "SELECT true AS ok FROM agents WHERE name = $1 AND credential_hash = $2 AND revoked_at IS NULL",
      [name, hash],
      { signal },
    );
    return res.rows.length > 0;
  }

  /**
   * Authenticates a Hello and opens a session, in one transaction:
   * - enrollment: consumes the token atomically (single use, unexpired), checks its name and pool scope, creates
   *   (or re-enrolls a revoked) agent with the new credential hash; a refused enrollment leaves the token unused;
   * - credential: finds the agent by credential hash; a revoked agent is refused.
   * Then records the session (state connected, or draining when a drain is pending; replica; session id), answers
   * the jobs the agent reports (resume when it holds the job's current epoch and the job is active; else not), and
   * hands back jobs the database says the agent holds but it did not report (offered → pending; running → lost).
   */
  async openSession(input: OpenSessionInput, signal?: AbortSignal): Promise<OpenedSession> {
    return this.db.tx(
      async (q) => {
        const { agent, enrolled } =
          input.auth.kind === "token"
            ? await enrollIn(q, input, input.auth.hash, input.auth.credentialHash)
            : await authenticateIn(q, input, input.auth.hash);
        const updated = await q.query<Row>(
          `UPDATE agents SET state = CASE WHEN drain_requested_at IS NOT NULL THEN 'draining' ELSE 'connected' END,
                  labels = $2::jsonb || coalesce(
                    (SELECT t.labels FROM enrollment_tokens t WHERE t.id = agents.enrolled_with), '{}'::jsonb),
                  version = $3, handlers = $4::text[], capacity = $5, replica = $6,
                  session_id = $7, connected_at = now(), last_heartbeat_at = now(), disconnected_at = NULL,
                  updated_at = now()
            WHERE name = $1 RETURNING ${COLUMNS}`,
          [
            agent.name,
            JSON.stringify(input.labels),
            input.version,
            input.handlers,
            input.capacity,
            input.replica,
            input.sessionId,
          ],
        );
        const row = toAgent(updated.rows[0] as Row);
        const { decisions, resumed, requeuedTargets } = await reconcileJobsIn(q, row.name, input.jobsInFlight);
        return { agent: row, enrolled, decisions, resumed, requeuedTargets };
      },
      { signal },
    );
  }

  /**
   * Ends a session (fenced by its id: a session superseded by a newer one changes nothing): the agent is
   * disconnected and its active jobs keep their lease for their `lost_after`. A finished drain (no active jobs) is
   * cleared. Returns false when the session was no longer the agent's live one.
   */
  async closeSession(name: string, sessionId: string, signal?: AbortSignal): Promise<boolean> {
    return this.db.tx(
      async (q) => {
        const res = await q.query<{ name: string }>(
          `UPDATE agents SET state = CASE WHEN state = 'revoked' THEN 'revoked' ELSE 'disconnected' END,
                  replica = NULL, session_id = NULL, disconnected_at = now(), updated_at = now(),
                  drain_requested_at = CASE WHEN EXISTS (
                      SELECT 1 FROM jobs WHERE agent = $1 AND state IN ('offered', 'running'))
                    THEN drain_requested_at ELSE NULL END
            WHERE name = $1 AND session_id = $2 RETURNING name`,
          [name, sessionId],
        );
        if (res.rows.length === 0) return false;
        await startLeasesIn(q, [name]);
        return true;
      },
      { signal },
    );
  }

  /**
   * Records that these sessions are alive (one statement per flush, not per heartbeat). Returns the sessions that
   * are no longer their agent's live session (superseded, revoked or swept): their streams should end.
   */
  async touchSessions(
    sessions: { name: string; sessionId: string }[],
    signal?: AbortSignal,
  ): Promise<{ name: string; sessionId: string }[]> {
    if (sessions.length === 0) return [];
    const res = await this.db.query<{ name: string }>(
      `UPDATE agents SET last_heartbeat_at = now()
         FROM unnest($1::text[], $2::text[]) AS s(name, session_id)
        WHERE agents.name = s.name AND agents.session_id = s.session_id AND agents.state <> 'revoked'
        RETURNING agents.name`,
      [sessions.map((s) => s.name), sessions.map((s) => s.sessionId)],
      { signal },
    );
    const alive = new Set(res.rows.map((r) => r.name));
    return sessions.filter((s) => !alive.has(s.name));
  }

  /**
   * Agents whose replica stopped reporting (it died with their streams): connected/draining with no heartbeat
   * recorded for `staleAfterMs` become disconnected, and their active jobs start their lease. Returns their names.
   */
  async sweepStale(staleAfterMs: number, signal?: AbortSignal): Promise<string[]> {
    return this.db.tx(
      async (q) => {
        const res = await q.query<{ name: string }>(
          `UPDATE agents SET state = 'disconnected', replica = NULL, session_id = NULL, disconnected_at = now(),
                  updated_at = now()
            WHERE state IN ('connected', 'draining')
              AND last_heartbeat_at < now() - make_interval(secs => $1::double precision / 1000)
            RETURNING name`,
          [staleAfterMs],
        );
        const names = res.rows.map((r) => r.name);
        await startLeasesIn(q, names);
        return names;
      },
      { signal },
    );
  }

  /** Marks the agent draining (persisted until its drained session ends). */
  async drain(name: string, reason: string, signal?: AbortSignal): Promise<AgentRow> {
    const res = await this.db.query<Row>(
      `UPDATE agents SET drain_requested_at = coalesce(drain_requested_at, now()), drain_reason = $2,
              state = CASE WHEN state = 'connected' THEN 'draining' ELSE state END, updated_at = now()
        WHERE name = $1 RETURNING ${COLUMNS}`,
      [name, reason],
      { signal },
    );
    const row = res.rows[0];
    if (row === undefined) throw StacklError.notFound(`agent ${name}`);
    const agent = toAgent(row);
    if (agent.state === "revoked") {
      throw new StacklError(ErrorCode.FailedPrecondition, `agent ${name} is revoked; there is nothing to drain`);
    }
    return agent;
  }

  /**
   * Revokes the agent: its credential is refused from now on, its session is ended (the caller rings the doorbell
   * that cuts the stream), its active jobs go back to pending (or are cancelled when cancellation was requested).
   */
  async revoke(name: string, reason: string, signal?: AbortSignal): Promise<RevokeResult> {
    return this.db.tx(
      async (q) => {
        const res = await q.query<Row>(
          `UPDATE agents SET state = 'revoked', revoked_at = coalesce(revoked_at, now()), revoke_reason = $2,
                  session_id = NULL, replica = NULL, drain_requested_at = NULL, updated_at = now()
            WHERE name = $1 RETURNING ${COLUMNS}`,
          [name, reason],
        );
        const row = res.rows[0];
        if (row === undefined) throw StacklError.notFound(`agent ${name}`);
        const cancelled = await q.query<{ id: string }>(
          `UPDATE jobs SET state = 'cancelled', finished_at = now(), updated_at = now(), lease_until = NULL,
                  error = jsonb_build_object('code', 'cancelled', 'retryable', false,
                            'message', coalesce(cancel_reason, 'cancelled') || ' (agent revoked before it confirmed)')
            WHERE agent = $1 AND state IN ('offered', 'running') AND cancel_requested_at IS NOT NULL
            RETURNING id`,
          [name],
        );
        const requeued = await q.query<{ id: string; target: string; epoch: number }>(
          `UPDATE jobs SET state = 'pending', agent = NULL, lease_until = NULL, offered_at = NULL,
                  job_token_hash = NULL, updated_at = now(),
                  error = jsonb_build_object('code', 'agent_revoked', 'retryable', true,
                            'message', 'agent ' || $1::text || ' was revoked; re-queued')
            WHERE agent = $1 AND state IN ('offered', 'running') RETURNING id, target, epoch`,
          [name],
        );
        const ids = [...cancelled.rows.map((r) => r.id), ...requeued.rows.map((r) => r.id)];
        if (ids.length > 0) {
          await q.query("SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id", [JOB_CHANGES_CHANNEL, ids]);
        }
        if (requeued.rows.length > 0) {
          await q.query("SELECT pg_notify($1, t) FROM (SELECT DISTINCT unnest($2::text[]) AS t) s", [
            JOB_TARGETS_CHANNEL,
            requeued.rows.map((r) => r.target),
          ]);
        }
        return {
          agent: toAgent(row),
          requeued: requeued.rows.map((r) => ({ id: r.id, target: r.target, epoch: Number(r.epoch) })),
          cancelled: cancelled.rows.map((r) => r.id),
        };
      },
      { signal },
    );
  }
}

async function enrollIn(
  q: Queryable,
  input: OpenSessionInput,
  tokenHash: string,
  credentialHash: string,
): Promise<{ agent: AgentRow; enrolled: true }> {
  const used = await q.query<{ id: string; pool: string; agent_name: string | null; labels: Record<string, string> }>(
    `UPDATE enrollment_tokens SET used_at = now(), used_by = $2
      WHERE hash = $1 AND used_at IS NULL AND expires_at > now()
      RETURNING id, pool, agent_name, labels`,
    [tokenHash, input.name],
  );
  const token = used.rows[0];
  if (token === undefined) {
    const why = await q.query<{ used: boolean; expired: boolean }>(
      "SELECT used_at IS NOT NULL AS used, expires_at <= now() AS expired FROM enrollment_tokens WHERE hash = $1",
      [tokenHash],
    );
    const t = why.rows[0];
    if (t === undefined) throw unauthenticated("unknown enrollment token");
    if (t.used) throw unauthenticated("the enrollment token was already used (tokens are single-use)");
    throw unauthenticated("the enrollment token has expired");
  }
  if (token.agent_name !== null && token.agent_name !== input.name) {
    throw denied(
      `the enrollment token is for agent ${JSON.stringify(token.agent_name)}, not ${JSON.stringify(input.name)}`,
    );
  }
  if (input.pool !== "" && input.pool !== token.pool) {
    throw denied(
      `the enrollment token is scoped to pool ${JSON.stringify(token.pool)}; the agent asked for pool ` +
        `${JSON.stringify(input.pool)} (start it with --pool ${token.pool})`,
    );
  }
  const existing = await q.query<{ revoked: boolean }>(
    "SELECT revoked_at IS NOT NULL AS revoked FROM agents WHERE name = $1 FOR UPDATE",
    [input.name],
  );
  const prior = existing.rows[0];
  if (prior !== undefined && !prior.revoked && token.agent_name === null) {
    // PERMISSION_DENIED (not ALREADY_EXISTS) so that the agent backs off like for any refused identity.
    throw denied(
      `an agent named ${JSON.stringify(input.name)} is already enrolled; revoke it first, or create a token for ` +
        "that name (--name) to re-enroll it",
    );
  }
  const res = await q.query<Row>(
    `INSERT INTO agents (name, pool, labels, state, credential_hash, enrolled_with, created_at, updated_at)
     VALUES ($1, $2, $3::jsonb, 'disconnected', $4, $5, now(), now())
     ON CONFLICT (name) DO UPDATE SET pool = EXCLUDED.pool, labels = EXCLUDED.labels, state = 'disconnected',
            credential_hash = EXCLUDED.credential_hash, enrolled_with = EXCLUDED.enrolled_with, revoked_at = NULL,
            revoke_reason = NULL, drain_requested_at = NULL, updated_at = now()
     RETURNING ${COLUMNS}`,
    [input.name, token.pool, JSON.stringify(token.labels), credentialHash, token.id],
  );
  return { agent: toAgent(res.rows[0] as Row), enrolled: true };
}

async function authenticateIn(
  q: Queryable,
  input: OpenSessionInput,
  credentialHash: string,
): Promise<{ agent: AgentRow; enrolled: false }> {
  const res = await q.query<Row>(`SELECT ${COLUMNS} FROM agents WHERE credential_hash = $1 FOR UPDATE`, [
    credentialHash,
  ]);
  const row = res.rows[0];
  if (row === undefined) throw unauthenticated("unknown agent credential");
  const agent = toAgent(row);
  if (agent.revokedAt !== null) {
    throw denied(`agent ${agent.name} was revoked${agent.revokeReason ? ` (${agent.revokeReason})` : ""}`);
  }
  if (agent.name !== input.name) {
    throw denied(`this credential belongs to agent ${JSON.stringify(agent.name)}, not ${JSON.stringify(input.name)}`);
  }
  if (input.pool !== "" && input.pool !== agent.pool) {
    throw denied(
      `agent ${agent.name} is enrolled in pool ${JSON.stringify(agent.pool)}, not ${JSON.stringify(input.pool)}`,
    );
  }
  return { agent, enrolled: false };
}

interface JobStateRow {
  id: string;
  epoch: number;
  state: JobState;
  agent: string | null;
  target: string;
  last_log_seq: number;
  redispatched: boolean;
  cancel_requested_at: Date | null;
  cancel_reason: string | null;
  cancel_grace_ms: number | null;
}

/**
 * The resume decisions (DESIGN section 4): a reported job is resumed when it is this agent's, at the reported epoch,
 * and still offered or running (its lease is cleared; offered becomes running, since the agent holds it); the agent
 * then resends logs from `last_log_seq + 1`. A reported job already finished at that epoch gets no decision (the
 * agent forgets it: its result was recorded). Anything else gets resume=false. Jobs the database gives this agent
 * that it did not report go back: offered → pending (the offer was lost), running → the loss rules.
 */
async function reconcileJobsIn(
  q: Queryable,
  agent: string,
  reported: ReportedJob[],
): Promise<Pick<OpenedSession, "decisions" | "resumed" | "requeuedTargets">> {
  const ids = reported.map((r) => r.jobId);
  const res = await q.query<JobStateRow>(
    `SELECT id, epoch, state, agent, target, last_log_seq, redispatched, cancel_requested_at, cancel_reason,
            cancel_grace_ms
       FROM jobs WHERE id = ANY($1::text[]) OR (agent = $2 AND state IN ('offered', 'running'))
      ORDER BY id FOR UPDATE`,
    [ids, agent],
  );
  const rows = new Map(res.rows.map((r) => [r.id, r]));
  const decisions: ResumeDecisionRow[] = [];
  const resumed: OpenedSession["resumed"] = [];
  const resumeIds: string[] = [];
  for (const job of reported) {
    const row = rows.get(job.jobId);
    const no = (reason: string): void => {
      decisions.push({ jobId: job.jobId, epoch: job.epoch, resume: false, reason, nextLogSeq: 0 });
    };
    if (row === undefined) {
      no("unknown job");
      continue;
    }
    const mine = row.agent === agent && Number(row.epoch) === job.epoch;
    if (mine && isTerminalJobState(row.state)) {
      if (!job.finished) no(`the job is already ${row.state}`);
      // finished: no decision — its result was recorded; the agent forgets it
      continue;
    }
    if (!mine || !ACTIVE_JOB_STATES.includes(row.state)) {
      no(
        Number(row.epoch) !== job.epoch
          ? `the job moved on to epoch ${row.epoch} (${row.state}); this epoch is stale`
          : `the job is ${row.state}${row.agent !== null && row.agent !== agent ? ` on agent ${row.agent}` : ""}`,
      );
      continue;
    }
    decisions.push({
      jobId: job.jobId,
      epoch: job.epoch,
      resume: true,
      reason: "",
      nextLogSeq: Number(row.last_log_seq) + 1,
    });
    resumeIds.push(row.id);
    resumed.push({
      id: row.id,
      epoch: Number(row.epoch),
      state: "running",
      cancel:
        row.cancel_requested_at === null
          ? null
          : {
              graceMs: row.cancel_grace_ms === null ? null : Number(row.cancel_grace_ms),
              reason: row.cancel_reason,
            },
    });
  }
  if (resumeIds.length > 0) {
    await q.query(
      `UPDATE jobs SET lease_until = NULL, state = 'running', started_at = coalesce(started_at, now()),
              updated_at = now()
        WHERE id = ANY($1::text[])`,
      [resumeIds],
    );
    await q.query("SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id", [JOB_CHANGES_CHANNEL, resumeIds]);
  }
  const reportedIds = new Set(ids);
  const unreported = res.rows.filter(
    (r) => r.agent === agent && ACTIVE_JOB_STATES.includes(r.state) && !reportedIds.has(r.id),
  );
  const offered = unreported.filter((r) => r.state === "offered");
  const running = unreported.filter((r) => r.state === "running");
  const requeuedTargets = new Set<string>();
  if (offered.length > 0) {
    await q.query(
      `UPDATE jobs SET state = 'pending', agent = NULL, attempt = greatest(attempt - 1, 0), offered_at = NULL,
              job_token_hash = NULL, lease_until = NULL, updated_at = now()
        WHERE id = ANY($1::text[])`,
      [offered.map((r) => r.id)],
    );
    await q.query("SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id", [
      JOB_CHANGES_CHANNEL,
      offered.map((r) => r.id),
    ]);
    await q.query("SELECT pg_notify($1, t) FROM (SELECT DISTINCT unnest($2::text[]) AS t) s", [
      JOB_TARGETS_CHANNEL,
      offered.map((r) => r.target),
    ]);
    for (const r of offered) requeuedTargets.add(r.target);
  }
  if (running.length > 0) {
    const lost = await loseJobsIn(
      q,
      running.map(
        (r): LostRow => ({
          id: r.id,
          target: r.target,
          agent: r.agent,
          redispatched: r.redispatched,
          cancel: r.cancel_requested_at !== null,
          cancel_reason: r.cancel_reason,
        }),
      ),
      "the agent reconnected without it (its state was lost)",
    );
    for (const r of lost.requeued) requeuedTargets.add(r.target);
  }
  return { decisions, resumed, requeuedTargets: [...requeuedTargets] };
}

/** Active jobs of these agents start their `lost_after` lease (their agent just disconnected). */
async function startLeasesIn(q: Queryable, agents: string[]): Promise<void> {
  if (agents.length === 0) return;
  await q.query(
    `UPDATE jobs SET lease_until = now() + make_interval(secs => lost_after_ms::double precision / 1000),
            updated_at = now()
      WHERE agent = ANY($1::text[]) AND state IN ('offered', 'running') AND lease_until IS NULL`,
    [agents],
  );
}

interface Row {
  name: string;
  pool: string;
  labels: Record<string, string>;
  version: string;
  handlers: string[];
  capacity: number;
  state: AgentState;
  replica: string | null;
  session_id: string | null;
  connected_at: Date | null;
  disconnected_at: Date | null;
  last_heartbeat_at: Date | null;
  drain_requested_at: Date | null;
  revoked_at: Date | null;
  revoke_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

function toAgent(r: Row): AgentRow {
  return {
    name: r.name,
    pool: r.pool,
    labels: r.labels ?? {},
    version: r.version,
    handlers: r.handlers ?? [],
    capacity: Number(r.capacity),
    state: r.state,
    replica: r.replica,
    sessionId: r.session_id,
    connectedAt: r.connected_at,
    disconnectedAt: r.disconnected_at,
    lastHeartbeatAt: r.last_heartbeat_at,
    drainRequestedAt: r.drain_requested_at,
    revokedAt: r.revoked_at,
    revokeReason: r.revoke_reason,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
