-- Up Migration
-- Stack instances: the request (spec), the placement, and per-row state. Steps and outputs live in their own rows,
-- so parallel stages and outputs posted by external tools never overwrite each other.
CREATE TABLE stack_instances (
  name            text        PRIMARY KEY,
  sat             text        NOT NULL,
  sit             text        NOT NULL,
  state           text        NOT NULL CHECK (state IN ('pending', 'deploying', 'ready', 'failed', 'deleting', 'deleted')),
  reason          text        NOT NULL DEFAULT '',
  -- params, secrets (references), service_params, service_secrets, tags, replicas, extra services, stages.
  spec            jsonb       NOT NULL,
  -- alias -> [{target, service, agent, cloud_provider, replica_index, opa_outputs, hosts}]
  placement       jsonb       NOT NULL,
  service_order   jsonb       NOT NULL,
  instance_outputs jsonb      NOT NULL DEFAULT '{}'::jsonb,
  generation      bigint      NOT NULL DEFAULT 1,
  task_id         text,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL
);

CREATE TABLE stack_outputs (
  instance   text        NOT NULL REFERENCES stack_instances (name) ON DELETE CASCADE,
  service    text        NOT NULL,
  target     text        NOT NULL,
  outputs    jsonb       NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (instance, service, target)
);

CREATE TABLE stack_steps (
  id            text        PRIMARY KEY,
  instance      text        NOT NULL REFERENCES stack_instances (name) ON DELETE CASCADE,
  generation    bigint      NOT NULL,
  key           text        NOT NULL,
  service       text        NOT NULL,
  fr            text        NOT NULL,
  targets       text[]      NOT NULL,
  action        text        NOT NULL CHECK (action IN ('create', 'update', 'delete')),
  stage_index   integer     NOT NULL,
  service_index integer     NOT NULL,
  fr_index      integer     NOT NULL,
  ord           integer     NOT NULL,
  status        text        NOT NULL CHECK (status IN ('pending', 'running', 'ready', 'failed', 'skipped', 'cancelled')),
  error         text        NOT NULL DEFAULT '',
  skip_reason   text        NOT NULL DEFAULT '',
  job_id        text,
  attempts      integer     NOT NULL DEFAULT 0,
  started_at    timestamptz,
  finished_at   timestamptz,
  UNIQUE (instance, generation, key)
);
CREATE INDEX stack_steps_run ON stack_steps (instance, generation, ord);

-- Every policy decision (placement phases, ad-hoc evaluations, authorization denials), for PolicyService.ListDecisions.
CREATE TABLE policy_decisions (
  id             text        PRIMARY KEY,
  policy         text        NOT NULL,
  rule           text        NOT NULL,
  input          jsonb,
  result         jsonb,
  duration_ms    double precision NOT NULL,
  stack_instance text,
  phase          text,
  principal      text,
  rpc            text,
  bundle_sha256  text,
  created_at     timestamptz NOT NULL
);
CREATE INDEX policy_decisions_recent ON policy_decisions (created_at DESC, id DESC);
CREATE INDEX policy_decisions_instance ON policy_decisions (stack_instance, created_at DESC);
