import type { JsonObject } from "@bufbuild/protobuf";
import { StacklError } from "../errors.js";
import type { Db, Queryable } from "./db.js";

/** Channel notified (payload: instance name) after every change of an instance, its steps or outputs. */
export const STACK_CHANGES_CHANNEL = "stackl_stacks";

export type StackState = "pending" | "deploying" | "ready" | "failed" | "deleting" | "deleted";
export type StepStatus = "pending" | "running" | "ready" | "failed" | "skipped" | "cancelled";

export interface PlacedTarget {
  target: string;
  service: string;
  agent: string;
  cloudProvider: string;
  replicaIndex: number;
  opaOutputs: JsonObject;
  hosts: string[];
}

export interface StackSpecJson {
  params: JsonObject;
  secrets: Record<string, string>;
  serviceParams: Record<string, JsonObject>;
  serviceSecrets: Record<string, Record<string, string>>;
  tags: Record<string, string>;
  replicas: Record<string, number>;
  extraServices: { name: string; service: string }[];
  stages: { name: string; services: string[] }[];
  /** Extra services removed by the latest update, torn down by its run. */
  teardown?: { name: string; service: string }[];
}

export interface StackRow {
  name: string;
  sat: string;
  sit: string;
  state: StackState;
  reason: string;
  spec: StackSpecJson;
  placement: Record<string, PlacedTarget[]>;
  serviceOrder: string[];
  instanceOutputs: JsonObject;
  generation: number;
  taskId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface StepRow {
  id: string;
  instance: string;
  generation: number;
  key: string;
  service: string;
  fr: string;
  targets: string[];
  action: "create" | "update" | "delete";
  stageIndex: number;
  serviceIndex: number;
  frIndex: number;
  order: number;
  status: StepStatus;
  error: string;
  skipReason: string;
  jobId: string | null;
  attempts: number;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export type NewStep = Omit<
  StepRow,
  "id" | "instance" | "generation" | "status" | "error" | "jobId" | "attempts" | "startedAt" | "finishedAt"
> & {
  status?: StepStatus;
};

/** Fencing of a run: writes of the run executor name the task and its epoch; a superseded runner writes nothing. */
export interface RunFence {
  taskId: string;
  epoch: number;
}

const COLS =
  "name, sat, sit, state, reason, spec, placement, service_order, instance_outputs, generation, task_id, created_at, updated_at";
const STEP_COLS =
  "id, instance, generation, key, service, fr, targets, action, stage_index, service_index, fr_index, ord, status, error, skip_reason, job_id, attempts, started_at, finished_at";

const FENCE = "EXISTS (SELECT 1 FROM tasks WHERE tasks.id = $F1 AND tasks.epoch = $F2 AND tasks.state = 'running')";

function fenced(sql: string, fence: RunFence, params: unknown[]): [string, unknown[]] {
  const n = params.length;
  return [sql.replaceAll("$F1", `$${n + 1}`).replaceAll("$F2", `$${n + 2}`), [...params, fence.taskId, fence.epoch]];
}

/** All SQL for stack instances, their steps and outputs. */
export class StackRepo {
  constructor(private readonly db: Db) {}

  tx<T>(fn: (q: Queryable) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.db.tx(fn, { signal });
  }

  async get(name: string, q: Queryable = this.db, signal?: AbortSignal): Promise<StackRow | undefined> {
    const res = await q.query<Row>(`SELECT ${COLS} FROM stack_instances WHERE name = $1`, [name], { signal });
    return res.rows[0] === undefined ? undefined : toRow(res.rows[0]);
  }

  /** Locks the instance row for a change (create/update/delete requests serialise on it). */
  async lock(q: Queryable, name: string): Promise<StackRow | undefined> {
    const res = await q.query<Row>(`SELECT ${COLS} FROM stack_instances WHERE name = $1 FOR UPDATE`, [name]);
    return res.rows[0] === undefined ? undefined : toRow(res.rows[0]);
  }

  async list(opts: {
    states?: StackState[];
    limit: number;
    after?: string;
    signal?: AbortSignal;
  }): Promise<StackRow[]> {
    const res = await this.db.query<Row>(
      `SELECT ${COLS} FROM stack_instances
        WHERE ($1::text[] IS NULL OR state = ANY($1::text[])) AND ($2::text IS NULL OR name > $2)
        ORDER BY name LIMIT $3`,
      [opts.states && opts.states.length > 0 ? opts.states : null, opts.after ?? null, opts.limit],
      { signal: opts.signal },
    );
    return res.rows.map(toRow);
  }

  async upsert(q: Queryable, row: Omit<StackRow, "createdAt" | "updatedAt" | "instanceOutputs">): Promise<void> {
    await q.query(
      `INSERT INTO stack_instances (name, sat, sit, state, reason, spec, placement, service_order, generation, task_id,
                                    created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, now(), now())
       ON CONFLICT (name) DO UPDATE SET sat = EXCLUDED.sat, sit = EXCLUDED.sit, state = EXCLUDED.state,
         reason = EXCLUDED.reason, spec = EXCLUDED.spec, placement = EXCLUDED.placement,
         service_order = EXCLUDED.service_order, generation = EXCLUDED.generation, task_id = EXCLUDED.task_id,
         updated_at = now()`,
      [
        row.name,
        row.sat,
        row.sit,
        row.state,
        row.reason,
        JSON.stringify(row.spec),
        JSON.stringify(row.placement),
        JSON.stringify(row.serviceOrder),
        row.generation,
        row.taskId,
      ],
    );
    await notify(q, row.name);
  }

  async insertSteps(q: Queryable, instance: string, generation: number, steps: NewStep[]): Promise<void> {
    if (steps.length === 0) return;
    await q.query(
      `INSERT INTO stack_steps (id, instance, generation, key, service, fr, targets, action, stage_index, service_index,
                                fr_index, ord, status, skip_reason)
       SELECT $1::text || '/' || $2::bigint::text || '/' || s.key, $1, $2::bigint, s.key, s.service, s.fr,
              ARRAY(SELECT jsonb_array_elements_text(s.targets::jsonb)), s.action, s.stage_index, s.service_index,
              s.fr_index, s.ord, s.status, s.skip_reason
         FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::int[], $10::int[],
                     $11::int[], $12::text[], $13::text[])
              AS s(key, service, fr, targets, action, stage_index, service_index, fr_index, ord, status, skip_reason)`,
      [
        instance,
        generation,
        steps.map((s) => s.key),
        steps.map((s) => s.service),
        steps.map((s) => s.fr),
        steps.map((s) => JSON.stringify(s.targets)),
        steps.map((s) => s.action),
        steps.map((s) => s.stageIndex),
        steps.map((s) => s.serviceIndex),
        steps.map((s) => s.frIndex),
        steps.map((s) => s.order),
        steps.map((s) => s.status ?? (s.skipReason ? "skipped" : "pending")),
        steps.map((s) => s.skipReason),
      ],
    );
  }

  async steps(instance: string, generation: number, signal?: AbortSignal): Promise<StepRow[]> {
    const res = await this.db.query<StepDbRow>(
      `SELECT ${STEP_COLS} FROM stack_steps WHERE instance = $1 AND generation = $2 ORDER BY ord`,
      [instance, generation],
      { signal },
    );
    return res.rows.map(toStep);
  }

  /** Step update by the run executor, fenced by its task epoch. Returns false when the fence rejected it. */
  async updateStep(
    fence: RunFence,
    id: string,
    change: { status: StepStatus; jobId?: string; error?: string; started?: boolean; finished?: boolean },
  ): Promise<boolean> {
    const [sql, params] = fenced(
      `UPDATE stack_steps SET status = $2, job_id = coalesce($3, job_id), error = coalesce($4, error),
              attempts = attempts + CASE WHEN $3::text IS NOT NULL THEN 1 ELSE 0 END,
              started_at = CASE WHEN $5 THEN now() ELSE started_at END,
              finished_at = CASE WHEN $6 THEN now() ELSE NULL END
        WHERE id = $1 AND ${FENCE} RETURNING instance`,
      fence,
      [
        id,
        change.status,
        change.jobId ?? null,
        change.error ?? null,
        change.started ?? false,
        change.finished ?? false,
      ],
    );
    const res = await this.db.query<{ instance: string }>(sql, params);
    const row = res.rows[0];
    if (row !== undefined) await this.db.notify(STACK_CHANGES_CHANNEL, row.instance);
    return row !== undefined;
  }

  /** Instance state change by the run executor, fenced. */
  async setState(fence: RunFence, name: string, state: StackState, reason: string): Promise<boolean> {
    const [sql, params] = fenced(
      `UPDATE stack_instances SET state = $2, reason = $3, updated_at = now() WHERE name = $1 AND ${FENCE}`,
      fence,
      [name, state, reason],
    );
    const res = await this.db.query(sql, params);
    if (res.rowCount > 0) await this.db.notify(STACK_CHANGES_CHANNEL, name);
    return res.rowCount > 0;
  }

  /** State change outside a run (e.g. a request that fails placement). */
  async setStateUnfenced(q: Queryable, name: string, state: StackState, reason: string): Promise<void> {
    await q.query("UPDATE stack_instances SET state = $2, reason = $3, updated_at = now() WHERE name = $1", [
      name,
      state,
      reason,
    ]);
    await notify(q, name);
  }

  /** Merges outputs for a service on a target and into the instance outputs, atomically (no lost updates). */
  async addOutputs(
    name: string,
    service: string,
    targets: string[],
    outputs: JsonObject,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.db.tx(
      async (q) => {
        const res = await q.query(
          "UPDATE stack_instances SET instance_outputs = instance_outputs || $2::jsonb, updated_at = now() WHERE name = $1",
          [name, JSON.stringify(outputs)],
        );
        if (res.rowCount === 0) throw StacklError.notFound(`stack instance "${name}"`);
        for (const target of targets) {
          await q.query(
            `INSERT INTO stack_outputs (instance, service, target, outputs, updated_at) VALUES ($1, $2, $3, $4::jsonb, now())
             ON CONFLICT (instance, service, target) DO UPDATE SET outputs = stack_outputs.outputs || EXCLUDED.outputs,
               updated_at = now()`,
            [name, service, target, JSON.stringify(outputs)],
          );
        }
        await notify(q, name);
      },
      { signal },
    );
  }

  async outputs(name: string, signal?: AbortSignal): Promise<Map<string, JsonObject>> {
    const res = await this.db.query<{ service: string; target: string; outputs: JsonObject }>(
      "SELECT service, target, outputs FROM stack_outputs WHERE instance = $1",
      [name],
      { signal },
    );
    return new Map(res.rows.map((r) => [`${r.service}@${r.target}`, r.outputs]));
  }

  async removeOutputs(q: Queryable, name: string, service: string): Promise<void> {
    await q.query("DELETE FROM stack_outputs WHERE instance = $1 AND service = $2", [name, service]);
  }

  /** Marks every unfinished step of older generations cancelled (a newer request superseded that run). */
  async supersedeOlderRuns(q: Queryable, name: string, generation: number): Promise<void> {
    await q.query(
      `UPDATE stack_steps SET status = 'cancelled', error = 'superseded by a newer request', finished_at = now()
        WHERE instance = $1 AND generation < $2 AND status IN ('pending', 'running')`,
      [name, generation],
    );
  }
}

async function notify(q: Queryable, name: string): Promise<void> {
  await q.query("SELECT pg_notify($1, $2)", [STACK_CHANGES_CHANNEL, name]);
}

interface Row {
  name: string;
  sat: string;
  sit: string;
  state: StackState;
  reason: string;
  spec: StackSpecJson;
  placement: Record<string, PlacedTarget[]>;
  service_order: string[];
  instance_outputs: JsonObject;
  generation: number;
  task_id: string | null;
  created_at: Date;
  updated_at: Date;
}

interface StepDbRow {
  id: string;
  instance: string;
  generation: number;
  key: string;
  service: string;
  fr: string;
  targets: string[];
  action: "create" | "update" | "delete";
  stage_index: number;
  service_index: number;
  fr_index: number;
  ord: number;
  status: StepStatus;
  error: string;
  skip_reason: string;
  job_id: string | null;
  attempts: number;
  started_at: Date | null;
  finished_at: Date | null;
}

function toRow(r: Row): StackRow {
  return {
    name: r.name,
    sat: r.sat,
    sit: r.sit,
    state: r.state,
    reason: r.reason,
    spec: r.spec,
    placement: r.placement,
    serviceOrder: r.service_order,
    instanceOutputs: r.instance_outputs,
    generation: Number(r.generation),
    taskId: r.task_id,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toStep(r: StepDbRow): StepRow {
  return {
    id: r.id,
    instance: r.instance,
    generation: Number(r.generation),
    key: r.key,
    service: r.service,
    fr: r.fr,
    targets: r.targets,
    action: r.action,
    stageIndex: Number(r.stage_index),
    serviceIndex: Number(r.service_index),
    frIndex: Number(r.fr_index),
    order: Number(r.ord),
    status: r.status,
    error: r.error,
    skipReason: r.skip_reason,
    jobId: r.job_id,
    attempts: Number(r.attempts),
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}
