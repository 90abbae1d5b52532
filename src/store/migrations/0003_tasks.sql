-- Up Migration
-- Durable tasks. PostgreSQL is the truth; the bus only carries notifications (outbox rows relayed to JetStream).
CREATE TABLE tasks (
  id                  text        PRIMARY KEY,
  type                text        NOT NULL,
  queue               text        NOT NULL,
  state               text        NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
  input               jsonb       NOT NULL DEFAULT '{}'::jsonb,
  result              jsonb,
  error               jsonb,
  attempts            integer     NOT NULL DEFAULT 0,
  max_attempts        integer     NOT NULL,
  -- Fencing epoch: every claim increments it; every write by a worker names it.
  epoch               bigint      NOT NULL DEFAULT 0,
  timeout_ms          integer     NOT NULL,
  lease_until         timestamptz,
  worker              text,
  requested_by        text        NOT NULL,
  stack_instance      text,
  created_at          timestamptz NOT NULL,
  started_at          timestamptz,
  finished_at         timestamptz,
  updated_at          timestamptz NOT NULL,
  -- Last time a delivery was published for the current epoch (the sweeper re-publishes stale pending tasks).
  enqueued_at         timestamptz NOT NULL,
  -- Earliest time a retry may be claimed (backoff after a retryable failure).
  not_before          timestamptz,
  cancel_requested_at timestamptz,
  cancel_reason       text
);
CREATE INDEX tasks_state_lease ON tasks (state, lease_until) WHERE state = 'running';
CREATE INDEX tasks_pending ON tasks (enqueued_at) WHERE state = 'pending';
CREATE INDEX tasks_created ON tasks (created_at DESC, id DESC);
CREATE INDEX tasks_stack_instance ON tasks (stack_instance, created_at DESC) WHERE stack_instance IS NOT NULL;

-- Transactional outbox: written in the same transaction as the task change; the relay publishes and deletes rows.
CREATE TABLE task_outbox (
  id         bigserial   PRIMARY KEY,
  queue      text        NOT NULL,
  task_id    text        NOT NULL,
  epoch      bigint      NOT NULL,
  created_at timestamptz NOT NULL
);

-- Idempotent side effects recorded in the same transaction as a task's fenced completion: a unique key per effect
-- means an effect can never be recorded twice, whatever the bus redelivers.
CREATE TABLE task_effects (
  effect_key  text        PRIMARY KEY,
  task_id     text        NOT NULL,
  epoch       bigint      NOT NULL,
  worker      text        NOT NULL,
  created_at  timestamptz NOT NULL
);
