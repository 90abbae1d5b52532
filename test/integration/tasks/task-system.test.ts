// The task system against a real PostgreSQL and a real nats-server with JetStream, with real `stackl worker`
// processes: kill -9, the stale-ack case, a wiped JetStream store, an always-failing task, and cancellation.
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { TaskService, TaskState } from "../../../gen/stackl/v1/tasks_pb.js";
import type { Db } from "../../../src/store/db.js";
import { openDb } from "../../../src/store/open-db.js";
import { TaskRepo, type TaskRow } from "../../../src/store/task-repo.js";
import { type NatsServer, startNats } from "../../support/nats.js";
import { freePort } from "../../support/ports.js";
import { type PgServer, startPostgres } from "../../support/postgres.js";
import { eventually, type StacklProcess, spawnStackl } from "../../support/stackl-process.js";

let pg: PgServer;
let nats: NatsServer;
let db: Db;
let repo: TaskRepo;
const procs: StacklProcess[] = [];

function env(queue: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    STACKL_DATABASE_URL: pg.url,
    STACKL_NATS_URL: nats.url,
    STACKL_WORK_QUEUE: queue,
    STACKL_TASK_LEASE: "2s",
    STACKL_SWEEP_PERIOD: "500ms",
    STACKL_REPUBLISH_AFTER: "3s",
    STACKL_TASK_RETRY_BASE: "100ms",
    STACKL_TASK_RETRY_CAP: "400ms",
    STACKL_SHUTDOWN_GRACE: "5s",
    ...extra,
  };
}

async function worker(name: string, queue: string, extra: Record<string, string> = {}): Promise<StacklProcess> {
  const p = spawnStackl(["worker"], env(queue, { STACKL_REPLICA_NAME: name, ...extra }));
  procs.push(p);
  await eventually(`${name} running`, async () => p.logs().includes("stackl worker running"), { timeoutMs: 60_000 });
  return p;
}

async function createTasks(queue: string, n: number, input: JsonObject, maxAttempts = 5): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = await repo.create({ type: "system.sleep", queue, input, requestedBy: "test", maxAttempts });
    ids.push(t.id);
  }
  return ids;
}

async function tasks(ids: string[]): Promise<TaskRow[]> {
  return Promise.all(ids.map(async (id) => (await repo.get(id)) as TaskRow));
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out"]);

async function allTerminal(ids: string[], timeoutMs = 90_000): Promise<TaskRow[]> {
  return eventually(
    `${ids.length} tasks terminal`,
    async () => {
      const rows = await tasks(ids);
      return rows.every((t) => TERMINAL.has(t.state)) ? rows : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );
}

async function effectsOf(ids: string[]): Promise<Map<string, { epoch: number; worker: string }[]>> {
  const res = await db.query<{ task_id: string; epoch: number; worker: string }>(
    "SELECT task_id, epoch, worker FROM task_effects WHERE task_id = ANY($1::text[])",
    [ids],
  );
  const map = new Map<string, { epoch: number; worker: string }[]>();
  for (const r of res.rows)
    map.set(r.task_id, [...(map.get(r.task_id) ?? []), { epoch: Number(r.epoch), worker: r.worker }]);
  return map;
}

describe("task system on PostgreSQL + NATS JetStream", { timeout: 600_000 }, () => {
  before(async () => {
    [pg, nats] = await Promise.all([startPostgres(), startNats()]);
    db = await openDb({ url: pg.url });
    repo = new TaskRepo(db);
  });

  after(async () => {
    for (const p of procs) p.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.exited));
    await db?.close();
    await Promise.all([pg?.stop(), nats?.stop()]);
  });

  test("kill -9 of a worker mid-run: every task terminal exactly once (0 lost, 0 duplicated)", async () => {
    const w1 = await worker("w1", "kill9");
    const w2 = await worker("w2", "kill9");
    const ids = await createTasks("kill9", 40, { ms: 400 });
    await eventually("w1 running tasks", async () => {
      const rows = await tasks(ids);
      return rows.filter((t) => t.state === "running" && t.worker?.startsWith("w1:")).length >= 2;
    });
    w1.kill("SIGKILL");
    await w1.exited;
    const rows = await allTerminal(ids);
    assert.deepEqual(
      rows.filter((t) => t.state !== "succeeded").map((t) => [t.id, t.state, t.error]),
      [],
      "every task succeeded",
    );
    const effects = await effectsOf(ids);
    assert.equal(effects.size, 40, "no task lost its side effect");
    for (const [id, list] of effects) assert.equal(list.length, 1, `task ${id} side effect recorded once`);
    const reclaimed = rows.filter((t) => t.epoch > 1);
    assert.ok(reclaimed.length >= 1, "the tasks w1 held were claimed again with a higher epoch");
    w2.kill("SIGTERM");
    assert.equal(await w2.exited, 0);
  });

  test("stale ack: a stalled worker's late write is rejected by the epoch; the redelivery's result stands", async () => {
    const a = await worker("a", "stale", { STACKL_WORKER_CONCURRENCY: "1" });
    const [id] = (await createTasks("stale", 1, { ms: 4000 })) as [string];
    await eventually("a holds the task", async () => (await repo.get(id))?.worker?.startsWith("a:"));
    a.kill("SIGSTOP");
    const b = await worker("b", "stale", { STACKL_WORKER_CONCURRENCY: "1" });
    const claimedByB = await eventually("b claims the redelivery", async () => {
      const t = await repo.get(id);
      return t?.worker?.startsWith("b:") && t.epoch >= 2 ? t : undefined;
    });
    a.kill("SIGCONT");
    const [done] = (await allTerminal([id])) as [TaskRow];
    assert.equal(done.state, "succeeded");
    assert.equal(done.epoch, claimedByB.epoch, "no later claim happened");
    await eventually("a reports its write was superseded", async () => a.logs().includes("superseded"), {
      timeoutMs: 20_000,
    });
    const effects = (await effectsOf([id])).get(id) ?? [];
    assert.equal(effects.length, 1);
    assert.equal(effects[0]?.epoch, claimedByB.epoch, "the effect is B's");
    assert.ok(effects[0]?.worker.startsWith("b:"));
    a.kill("SIGTERM");
    b.kill("SIGTERM");
    await Promise.all([a.exited, b.exited]);
  });

  test("stop NATS, delete its store, start it: every non-terminal task is delivered again and completes", async () => {
    const w = await worker("wipe", "wipe", { STACKL_WORKER_CONCURRENCY: "2" });
    const ids = await createTasks("wipe", 20, { ms: 300 });
    await eventually("some done", async () => (await tasks(ids)).filter((t) => t.state === "succeeded").length >= 3);
    await nats.stop();
    await rm(nats.storeDir, { recursive: true, force: true });
    await nats.start();
    const rows = await allTerminal(ids, 120_000);
    assert.deepEqual(
      rows.filter((t) => t.state !== "succeeded").map((t) => t.id),
      [],
    );
    assert.equal((await effectsOf(ids)).size, 20);
    w.kill("SIGTERM");
    assert.equal(await w.exited, 0);
  });

  test("a task that always fails ends failed after its attempts with the error kept; others are not held up", async () => {
    const w = await worker("fail", "fail", { STACKL_WORKER_CONCURRENCY: "2", STACKL_TASK_MAX_DELIVER: "3" });
    const [bad] = (await createTasks("fail", 1, { fail: "retryable" }, 10)) as [string];
    const good = await createTasks("fail", 6, { ms: 50 });
    const rows = await allTerminal([bad, ...good]);
    const failed = rows[0] as TaskRow;
    assert.equal(failed.state, "failed");
    assert.equal(failed.error?.code, "max_deliver_exhausted");
    assert.match(failed.error?.message ?? "", /asked to fail/);
    assert.equal(failed.attempts, 3);
    const goods = rows.slice(1);
    assert.ok(goods.every((t) => t.state === "succeeded"));
    const lastGood = Math.max(...goods.map((t) => t.finishedAt?.getTime() ?? 0));
    assert.ok(lastGood < (failed.finishedAt?.getTime() ?? 0), "the good tasks finished while the bad one was retrying");
    w.kill("SIGTERM");
    await w.exited;
  });

  test("CancelTask of a running task reaches the worker's AbortSignal and ends cancelled", async () => {
    const port = await freePort();
    const server = spawnStackl(["serve"], env("cancel", { STACKL_PORT: String(port) }));
    procs.push(server);
    const w = await worker("cancel", "cancel");
    const client = createClient(TaskService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const started = await eventually(
      "server up",
      async () => (await client.runTask({ type: "system.sleep", queue: "cancel", input: { ms: 60_000 } })).task,
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const id = started?.id ?? "";
    await eventually("running", async () => (await repo.get(id))?.state === "running");
    const res = await client.cancelTask({ id, reason: "test says stop", wait: durationFromMs(15_000) });
    assert.equal(res.task?.state, TaskState.CANCELLED);
    assert.equal(res.task?.error?.code, "cancelled");
    await eventually("the worker logs that it saw the cancellation", async () =>
      w.logs().includes('"cause":"cancelled"'),
    );
    w.kill("SIGTERM");
    server.kill("SIGTERM");
    await Promise.all([w.exited, server.exited]);
  });
});
