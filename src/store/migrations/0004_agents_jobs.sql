-- Up Migration
-- Agents, their enrollment tokens, jobs and job logs (issue 5). PostgreSQL is the truth; the bus only rings
-- doorbells ("jobs waiting for target T", "cancel job J", "revoke agent A").

-- Single-use enrollment tokens: only the SHA-256 of the token is stored; it is consumed by an atomic
-- `UPDATE … WHERE used_at IS NULL AND expires_at > now()` when an agent enrolls.
CREATE TABLE enrollment_tokens (
  id          text        PRIMARY KEY,
  hash        text        NOT NULL UNIQUE,
  pool        text        NOT NULL,
  -- Optional fixed agent name; NULL lets the agent choose.
  agent_name  text,
  labels      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  created_by  text        NOT NULL,
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  -- Agent that enrolled with it.
  used_by     text
);

-- One row per agent identity. `credential_hash` is the SHA-256 of the agent credential (returned once, at
-- enrollment). `session_id`/`replica` name the live stream; every session-scoped write is fenced by `session_id`.
CREATE TABLE agents (
  name               text        PRIMARY KEY,
  pool               text        NOT NULL,
  labels             jsonb       NOT NULL DEFAULT '{}'::jsonb,
  version            text        NOT NULL DEFAULT '',
  handlers           text[]      NOT NULL DEFAULT '{}',
  capacity           integer     NOT NULL DEFAULT 1,
  state              text        NOT NULL CHECK (state IN ('connected', 'disconnected', 'draining', 'revoked')),
  credential_hash    text        UNIQUE,
  replica            text,
  session_id         text,
  connected_at       timestamptz,
  disconnected_at    timestamptz,
  last_heartbeat_at  timestamptz,
  drain_requested_at timestamptz,
  drain_reason       text,
  revoked_at         timestamptz,
  revoke_reason      text,
  enrolled_with      text,
  created_at         timestamptz NOT NULL,
  updated_at         timestamptz NOT NULL
);
CREATE INDEX agents_pool ON agents (pool, name);
CREATE INDEX agents_live ON agents (last_heartbeat_at) WHERE state IN ('connected', 'draining');

-- Jobs: one row per invocation. pending -> offered (claimed for an agent: epoch + 1) -> running (accepted) ->
-- succeeded | failed | cancelled | timed_out. Every write from an agent names the epoch (fencing).
CREATE TABLE jobs (
  id                  text        PRIMARY KEY,
  state               text        NOT NULL
                      CHECK (state IN ('pending', 'offered', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
  -- Agent name or pool the job is routed to.
  target              text        NOT NULL,
  -- Handler it needs (spec.invocation.tool), so only agents offering it claim it.
  tool                text        NOT NULL,
  -- Agent currently (or last) holding it.
  agent               text,
  -- JobSpec in its canonical protobuf JSON form. Secrets are references (`env:NAME`), never values.
  spec                jsonb       NOT NULL,
  epoch               bigint      NOT NULL DEFAULT 0,
  attempt             integer     NOT NULL DEFAULT 0,
  outputs             jsonb,
  error               jsonb,
  exit_code           integer,
  timeout_ms          bigint      NOT NULL,
  lost_after_ms       bigint      NOT NULL,
  -- Set while the holding agent is disconnected: after it the job is lost (re-dispatched once, then failed).
  lease_until         timestamptz,
  -- Highest persisted log seq (logs are contiguous 1..last_log_seq across attempts).
  last_log_seq        bigint      NOT NULL DEFAULT 0,
  log_bytes           bigint      NOT NULL DEFAULT 0,
  cancel_requested_at timestamptz,
  cancel_reason       text,
  cancel_grace_ms     integer,
  -- True once the job was re-dispatched after losing its agent; a second loss fails it (`agent_lost`).
  redispatched        boolean     NOT NULL DEFAULT false,
  -- SHA-256 of the job token of the current epoch (the token itself only travels in the offer).
  job_token_hash      text,
  task_id             text,
  step_id             text,
  stack_instance      text,
  requested_by        text        NOT NULL,
  created_at          timestamptz NOT NULL,
  offered_at          timestamptz,
  started_at          timestamptz,
  finished_at         timestamptz,
  updated_at          timestamptz NOT NULL
);
CREATE INDEX jobs_pending ON jobs (target, created_at, id) WHERE state = 'pending';
CREATE INDEX jobs_agent_active ON jobs (agent) WHERE state IN ('offered', 'running');
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state IN ('offered', 'running') AND lease_until IS NOT NULL;
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_task ON jobs (task_id, created_at) WHERE task_id IS NOT NULL;
CREATE INDEX jobs_stack_instance ON jobs (stack_instance, created_at DESC) WHERE stack_instance IS NOT NULL;

-- Sequenced log chunks, persisted before they are acked to the agent. Secret values are masked on the agent.
CREATE TABLE job_logs (
  job_id  text        NOT NULL,
  seq     bigint      NOT NULL,
  -- 1 stdout, 2 stderr, 3 system (LogStream).
  stream  smallint    NOT NULL,
  data    bytea       NOT NULL,
  epoch   bigint      NOT NULL,
  time    timestamptz NOT NULL,
  PRIMARY KEY (job_id, seq)
);

-- Down Migration
DROP TABLE job_logs;
DROP TABLE jobs;
DROP TABLE agents;
DROP TABLE enrollment_tokens;
