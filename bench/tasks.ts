/**
 * Task system benchmark (issue 4): tasks/s through the whole path — RunTask RPC → task row + outbox row in
 * PostgreSQL → outbox relay → JetStream → `stackl worker` process → claim (epoch + 1) → `system.sleep {ms: 0}` →
 * fenced commit → ack — with 1, 2 and 4 worker processes, next to a raw baseline in the same run: a bare JetStream
 * publish/consume loop (@nats-io/jetstream; pipelined publishes; `consume()` with explicit acks) doing one
 * PostgreSQL INSERT per message.
 *
 *   npx tsx bench/tasks.ts [--quick] [--tasks N] [--workers 1,2,4] [--warmup N] [--raw N] [--profile]
 *
 * --quick    500 tasks per configuration (a smoke run)
 * --tasks    tasks per configuration (default 2000)
 * --workers  worker process counts to measure (default 1,2,4)
 * --warmup   tasks run (unmeasured) on each configuration first (default 300)
 * --raw      messages per raw baseline run (default 5 × tasks)
 * --profile  also run the server and the workers under `node --cpu-prof` and print their top self-time functions
 *            (profiled runs are separate from the measured ones: profiling slows the processes down)
 *
 * Everything (PostgreSQL with stock durability settings, nats-server with JetStream, `stackl serve`, the workers)
 * runs on 127.0.0.1 and is stopped at the end. Prints Markdown tables on stdout, progress on stderr.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  AckPolicy,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import pg from "pg";
import { TaskService } from "../gen/stackl/v1/tasks_pb.js";
import { queueToken } from "../src/bus/queue-name.js";
import {
  type BenchPg,
  type NatsServer,
  pgSettings,
  type StacklHandle,
  startBenchNats,
  startBenchPostgres,
  startStackl,
} from "./lib/cluster.js";
import { formatProfile, summarizeProfile } from "./lib/cpuprofile.js";
import { machineLine } from "./lib/machine.js";
import { BENCH_MARK, type StatementDelta, shortSql, snapshotStatements, statementDelta } from "./lib/pgstat.js";
import { CpuMeter, cpuMs, ownCpuMs, treeCpuMs } from "./lib/proc.js";
import { fmtMs, fmtRate, fmtRatio, fmtUs, type LatencySummary, summarize } from "./lib/stats.js";
import { printTable, progress } from "./lib/table.js";

const args = process.argv.slice(2);
const QUICK = args.includes("--quick");
const PROFILE = args.includes("--profile");
const argValue = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const N = Number(argValue("--tasks") ?? (QUICK ? 500 : 2000));
/** Messages per raw baseline run: more than N, so that its (much shorter) run is long enough to measure. */
const RAW_N = Number(argValue("--raw") ?? N * 5);
const WORKER_COUNTS = (argValue("--workers") ?? "1,2,4").split(",").map(Number);
const SUBMIT_CONCURRENCY = 64;
const WORKER_CONCURRENCY = 16;
const WARMUP_TASKS = Number(argValue("--warmup") ?? (QUICK ? 100 : 300));
/** A configuration that has not finished after this is reported as such (bounds the run). */
const RUN_TIMEOUT_MS = 90_000;
const TERMINAL = ["succeeded", "failed", "cancelled", "timed_out"];

interface RunResult {
  label: string;
  tasks: number;
  /** N ÷ (last finish − first submit) */
  perSecond: number;
  /** RunTask RPCs per second while submitting. */
  submitPerSecond: number;
  submitLatency: LatencySummary;
  /** Task created → finished (database timestamps). */
  taskLatency: LatencySummary;
  failed: number;
  cpuUsPerTask: Record<string, number>;
  elapsedMs: number;
  /** Wall clock (ms since epoch) of the first submit and of the last finish. */
  from: number;
  to: number;
  /** Wall clock at which each worker process was spawned (profile windows). */
  workerStartedAt: number[];
  /** SQL statements executed in the `stackl` database during the run (pg_stat_statements). */
  statements: StatementDelta[];
}

// ---------------------------------------------------------------------------------------------------------------
// STACKL

interface Cluster {
  pg: BenchPg;
  nats: NatsServer;
  nc: NatsConnection;
  jsm: JetStreamManager;
  db: pg.Pool;
}

function stacklEnv(c: Cluster): Record<string, string> {
  return { STACKL_DATABASE_URL: c.pg.url, STACKL_NATS_URL: c.nats.url };
}

/** Waits until `count` worker processes have pull requests open on the queue's durable consumer. */
async function waitConsumers(c: Cluster, queue: string, count: number, workers: StacklHandle[]): Promise<void> {
  const durable = `pool-${queueToken(queue)}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    for (const w of workers) {
      const code = await Promise.race([w.proc.exited, sleep(0).then(() => undefined)]);
      if (code !== undefined) throw new Error(`worker ${w.pid} exited (${code}):\n${w.proc.logs().slice(-3000)}`);
    }
    try {
      const info = await c.jsm.consumers.info("STACKL_WORK", durable);
      if ((info.num_waiting ?? 0) >= count) return;
    } catch {
      // not declared yet
    }
    if (Date.now() > deadline) throw new Error(`${count} workers did not attach to ${durable} in time`);
    await sleep(200);
  }
}

async function submit(
  client: ReturnType<typeof createClient<typeof TaskService>>,
  queue: string,
  count: number,
): Promise<{ ids: string[]; durations: number[]; elapsedMs: number }> {
  const ids: string[] = [];
  const durations: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: SUBMIT_CONCURRENCY }, async () => {
      while (next < count) {
        next++;
        const t = performance.now();
        const res = await client.runTask({ type: "system.sleep", input: { ms: 0 }, queue });
        durations.push(performance.now() - t);
        ids.push(res.task?.id ?? "");
      }
    }),
  );
  return { ids, durations, elapsedMs: performance.now() - start };
}

/** Polls PostgreSQL until every task in `ids` is terminal; returns the latest finish time (ms since epoch). */
async function waitTerminal(
  db: pg.Pool,
  ids: string[],
  deadline: number,
): Promise<{ lastFinish: number; failed: number }> {
  for (;;) {
    const res = await db.query<{ done: number; ok: number; last: Date | null }>(
      `${BENCH_MARK} SELECT count(*) FILTER (WHERE state = ANY($2::text[]))::int AS done,
              count(*) FILTER (WHERE state = 'succeeded')::int AS ok, max(finished_at) AS last
         FROM tasks WHERE id = ANY($1::text[])`,
      [ids, TERMINAL],
    );
    const row = res.rows[0] as { done: number; ok: number; last: Date | null };
    if (row.done === ids.length) return { lastFinish: row.last?.getTime() ?? Date.now(), failed: ids.length - row.ok };
    if (Date.now() > deadline) throw new Error(`only ${row.done} of ${ids.length} tasks terminal in time`);
    await sleep(20);
  }
}

async function taskLatencies(db: pg.Pool, ids: string[]): Promise<number[]> {
  const res = await db.query<{ ms: number }>(
    `${BENCH_MARK} SELECT extract(epoch FROM finished_at - created_at) * 1000 AS ms FROM tasks WHERE id = ANY($1::text[])`,
    [ids],
  );
  return res.rows.map((r) => Number(r.ms));
}

async function runStackl(
  c: Cluster,
  server: StacklHandle,
  workerCount: number,
  opts: { profileDir?: string; label?: string } = {},
): Promise<RunResult> {
  const label = opts.label ?? `STACKL, ${workerCount} worker process${workerCount > 1 ? "es" : ""}`;
  const queue = `bench-w${workerCount}${opts.profileDir ? "-prof" : ""}`;
  progress(`${label}: starting ${workerCount} × stackl worker (concurrency ${WORKER_CONCURRENCY}, queue ${queue})`);
  const workers = await Promise.all(
    Array.from({ length: workerCount }, (_, k) =>
      startStackl(
        "worker",
        {
          ...stacklEnv(c),
          STACKL_WORK_QUEUE: queue,
          STACKL_WORKER_CONCURRENCY: String(WORKER_CONCURRENCY),
          STACKL_REPLICA_NAME: `bench-w${k + 1}`,
        },
        opts.profileDir ? { nodeOptions: `--cpu-prof --cpu-prof-dir=${opts.profileDir}/worker-${k + 1}` } : {},
      ),
    ),
  );
  try {
    await waitConsumers(c, queue, workerCount, workers);
    const client = createClient(TaskService, createGrpcTransport({ baseUrl: server.url }));
    progress(`${label}: warm-up, ${WARMUP_TASKS} tasks`);
    const warm = await submit(client, queue, WARMUP_TASKS);
    await waitTerminal(c.db, warm.ids, Date.now() + RUN_TIMEOUT_MS);

    const meter = new CpuMeter({
      server: () => cpuMs(server.pid),
      workers: () => workers.reduce((a, w) => a + cpuMs(w.pid), 0),
      postgres: () => treeCpuMs(c.pg.pid),
      nats: () => cpuMs(c.nats.pid),
      client: ownCpuMs,
    });
    progress(`${label}: ${N} RunTask calls at concurrency ${SUBMIT_CONCURRENCY}`);
    const statementsBefore = await snapshotStatements(c.db);
    const before = meter.snapshot();
    const t0 = Date.now();
    const sub = await submit(client, queue, N);
    const { lastFinish, failed } = await waitTerminal(c.db, sub.ids, t0 + RUN_TIMEOUT_MS);
    const cpu = CpuMeter.delta(before, meter.snapshot());
    const statements = statementDelta(statementsBefore, await snapshotStatements(c.db));
    const elapsedMs = lastFinish - t0;
    const cpuUsPerTask: Record<string, number> = {};
    for (const [k, ms] of Object.entries(cpu)) cpuUsPerTask[k] = (ms * 1000) / N;
    const workersBy = await c.db.query<{ worker: string; n: number }>(
      `${BENCH_MARK} SELECT split_part(worker, ':', 1) AS worker, count(*)::int AS n FROM tasks
        WHERE id = ANY($1::text[]) GROUP BY 1 ORDER BY 1`,
      [sub.ids],
    );
    progress(
      `${label}: done in ${elapsedMs} ms; per worker ${workersBy.rows.map((r) => `${r.worker}=${r.n}`).join(" ")}`,
    );
    return {
      label,
      tasks: N,
      perSecond: (N / elapsedMs) * 1000,
      submitPerSecond: (N / sub.elapsedMs) * 1000,
      submitLatency: summarize(sub.durations),
      taskLatency: summarize(await taskLatencies(c.db, sub.ids)),
      failed,
      cpuUsPerTask,
      elapsedMs,
      from: t0,
      to: lastFinish,
      workerStartedAt: workers.map((w) => w.startedAt),
      statements,
    };
  } finally {
    progress(`${label}: stopping workers`);
    await Promise.all(workers.map((w) => w.stop()));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Raw baseline: JetStream work queue + one INSERT per message, no STACKL code

const RAW_STREAM = "RAW_BENCH";
const RAW_CONSUMER_CONCURRENCY = WORKER_CONCURRENCY;

async function runRaw(c: Cluster, label: string): Promise<RunResult> {
  progress(
    `${label}: ${RAW_N} messages (publishes pipelined ${SUBMIT_CONCURRENCY} deep; ${RAW_CONSUMER_CONCURRENCY} handlers)`,
  );
  await c.jsm.streams.delete(RAW_STREAM).catch(() => undefined);
  await c.jsm.streams.add({
    name: RAW_STREAM,
    subjects: ["rawbench.>"],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
  });
  await c.jsm.consumers.add(RAW_STREAM, {
    durable_name: "raw",
    ack_policy: AckPolicy.Explicit,
    ack_wait: 30_000_000_000,
    max_ack_pending: 1000,
  });
  await c.db.query(
    "CREATE TABLE IF NOT EXISTS raw_tasks (id text PRIMARY KEY, payload jsonb NOT NULL, done_at timestamptz NOT NULL DEFAULT now())",
  );
  const js = jetstream(c.nc);
  const consumer = await js.consumers.get(RAW_STREAM, "raw");
  const pool = new pg.Pool({ connectionString: c.pg.url, max: RAW_CONSUMER_CONCURRENCY });
  pool.on("error", () => undefined); // an idle connection closed by the server at shutdown
  const runId = Math.random().toString(36).slice(2, 8);
  const encoder = new TextEncoder();
  try {
    // Warm-up: open the pool's connections and JIT the path.
    await Promise.all(Array.from({ length: RAW_CONSUMER_CONCURRENCY }, () => pool.query("SELECT 1")));
    const latencies: number[] = [];
    const publishDurations: number[] = [];
    let done = 0;
    let inFlight = 0;
    const waiters: (() => void)[] = [];
    let finished!: () => void;
    const allDone = new Promise<void>((r) => {
      finished = r;
    });
    const messages = await consumer.consume({ max_messages: 64 });
    const meter = new CpuMeter({
      server: () => 0,
      workers: () => 0,
      postgres: () => treeCpuMs(c.pg.pid),
      nats: () => cpuMs(c.nats.pid),
      client: ownCpuMs,
    });
    const statementsBefore = await snapshotStatements(c.db);
    const before = meter.snapshot();
    const t0 = Date.now();
    const p0 = performance.now();
    const consuming = (async () => {
      for await (const m of messages) {
        if (inFlight >= RAW_CONSUMER_CONCURRENCY) await new Promise<void>((r) => waiters.push(r));
        inFlight++;
        void (async () => {
          try {
            const body = m.json<{ id: string; t: number }>();
            await pool.query({
              name: "raw-task-insert",
              text: "INSERT INTO raw_tasks (id, payload) VALUES ($1, $2::jsonb)",
              values: [body.id, m.string()],
            });
            m.ack();
            latencies.push(performance.now() - body.t);
            if (++done === RAW_N) finished();
          } catch (err) {
            console.error("raw handler failed", err);
            m.nak();
          } finally {
            inFlight--;
            waiters.shift()?.();
          }
        })();
      }
    })();
    let next = 0;
    const publishStart = performance.now();
    await Promise.all(
      Array.from({ length: SUBMIT_CONCURRENCY }, async () => {
        while (next < RAW_N) {
          const i = next++;
          const id = `raw-${runId}-${i}`;
          const t = performance.now();
          const payload = JSON.stringify({ id, t, type: "system.sleep", input: { ms: 0 } });
          await js.publish("rawbench.default", encoder.encode(payload), { msgID: id });
          publishDurations.push(performance.now() - t);
        }
      }),
    );
    const publishMs = performance.now() - publishStart;
    await Promise.race([
      allDone,
      sleep(RUN_TIMEOUT_MS).then(() => {
        throw new Error(`raw baseline: only ${done} of ${RAW_N} messages done in time`);
      }),
    ]);
    const elapsedMs = performance.now() - p0;
    await c.nc.flush(); // the last acks
    const cpu = CpuMeter.delta(before, meter.snapshot());
    const statements = statementDelta(statementsBefore, await snapshotStatements(c.db));
    messages.stop();
    await consuming;
    const cpuUsPerTask: Record<string, number> = {};
    for (const [k, ms] of Object.entries(cpu)) cpuUsPerTask[k] = (ms * 1000) / RAW_N;
    progress(`${label}: done in ${Math.round(elapsedMs)} ms (t0 ${new Date(t0).toISOString()})`);
    return {
      label,
      tasks: RAW_N,
      perSecond: (RAW_N / elapsedMs) * 1000,
      submitPerSecond: (RAW_N / publishMs) * 1000,
      submitLatency: summarize(publishDurations),
      taskLatency: summarize(latencies),
      failed: RAW_N - done,
      cpuUsPerTask,
      elapsedMs,
      from: t0,
      to: t0 + elapsedMs,
      workerStartedAt: [],
      statements,
    };
  } finally {
    await pool.end();
    await c.jsm.streams.delete(RAW_STREAM).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------------------------

function perTask(count: number, tasks: number): string {
  return (count / tasks).toFixed(1);
}

function report(stackl: RunResult[], raws: RunResult[]): void {
  const rawRate = raws.reduce((a, r) => a + r.perSecond, 0) / raws.length;
  const row = (r: RunResult, isRaw: boolean) => [
    r.label,
    String(r.tasks),
    fmtRate(r.perSecond),
    isRaw ? "1.00× (ref.)" : fmtRatio(r.perSecond, rawRate),
    fmtRate(r.submitPerSecond),
    `${fmtMs(r.submitLatency.p50)} / ${fmtMs(r.submitLatency.p99)}`,
    `${fmtMs(r.taskLatency.p50)} / ${fmtMs(r.taskLatency.p99)}`,
    perTask(
      r.statements.reduce((a, st) => a + st.calls, 0),
      r.tasks,
    ),
    String(r.failed),
  ];
  printTable(
    `Tasks: whole path, ${N} tasks per configuration, RunTask at concurrency ${SUBMIT_CONCURRENCY}, worker concurrency ${WORKER_CONCURRENCY}`,
    [
      "configuration",
      "tasks",
      "tasks/s",
      "÷ raw tasks/s",
      "submit/s (RunTask or publish)",
      "submit p50 / p99",
      "created→finished p50 / p99",
      "SQL statements per task",
      "not succeeded",
    ],
    [...raws.map((r) => row(r, true)), ...stackl.map((r) => row(r, false))],
  );
  process.stdout.write(
    `\nRatio = STACKL tasks/s ÷ raw msgs/s (raw = mean of the ${raws.length} raw runs: ${fmtRate(rawRate)} msgs/s). ` +
      "tasks/s = tasks ÷ (last finish − first submit). created→finished: task row created_at → finished_at for " +
      "STACKL; publish → INSERT done for raw. Both are closed-loop queueing figures (64 submitters; the raw " +
      "publisher outruns its consumer, so its messages queue in the stream), not pipeline floors: compare them " +
      "only as what a caller waited under this load.\n",
  );
  const cpuRow = (r: RunResult) => {
    const c = r.cpuUsPerTask;
    const total = Object.values(c).reduce((a, b) => a + b, 0);
    return [
      r.label,
      fmtUs(c.server ?? 0),
      fmtUs(c.workers ?? 0),
      fmtUs(c.postgres ?? 0),
      fmtUs(c.nats ?? 0),
      fmtUs(c.client ?? 0),
      fmtUs(total),
    ];
  };
  printTable(
    "CPU per task (all processes; the machine has 2 cores, so 1 s of wall time is at most 2,000,000 µs of CPU)",
    ["configuration", "stackl serve", "stackl workers", "postgres", "nats-server", "bench client", "total"],
    [...raws.map(cpuRow), ...stackl.map(cpuRow)],
  );
  const runs = [raws[0] as RunResult, ...stackl];
  const texts = new Map<string, number>();
  for (const r of runs) for (const st of r.statements) texts.set(st.query, (texts.get(st.query) ?? 0) + st.calls);
  const top = [...texts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20);
  printTable(
    "SQL statements per task, by statement (pg_stat_statements; BEGIN carries `SET LOCAL statement_timeout` in the same round trip)",
    ["statement", ...runs.map((r) => r.label.replace("STACKL, ", "").replace(" (run 1)", ""))],
    top.map(([q]) => [
      `\`${shortSql(q, 80).replace(/\|/g, "\\|")}\``,
      ...runs.map((r) => perTask(r.statements.find((st) => st.query === q)?.calls ?? 0, r.tasks)),
    ]),
  );
}

async function main(): Promise<void> {
  process.stdout.write(`# bench/tasks.ts ${args.join(" ")}\n\n${machineLine()}\n`);
  process.stdout.write(
    "Note: the machine has 2 cores shared by the bench client, stackl serve, the workers, PostgreSQL and nats-server; " +
      "more worker processes add CPU contention, not CPU.\n",
  );
  progress("starting PostgreSQL and nats-server");
  const [pgServer, nats] = await Promise.all([startBenchPostgres(), startBenchNats()]);
  const nc = await connect({ servers: nats.url });
  const db = new pg.Pool({ connectionString: pgServer.url, max: 2 });
  db.on("error", () => undefined); // an idle connection closed by the server at shutdown
  const c: Cluster = { pg: pgServer, nats, nc, jsm: await jetstreamManager(nc), db };
  let server: StacklHandle | undefined;
  const profileRoot = PROFILE ? mkdtempSync(path.join(tmpdir(), "stackl-bench-prof-")) : undefined;
  try {
    process.stdout.write(`PostgreSQL: ${await pgSettings(pgServer.url)}\nnats-server: ${nc.info?.version}\n`);
    progress("starting stackl serve");
    server = await startStackl("serve", stacklEnv(c));
    const raws: RunResult[] = [await runRaw(c, "raw baseline (run 1)")];
    const stackl: RunResult[] = [];
    for (const w of WORKER_COUNTS) stackl.push(await runStackl(c, server, w));
    raws.push(await runRaw(c, "raw baseline (run 2)"));
    report(stackl, raws);

    if (profileRoot) {
      await server.stop();
      server = undefined;
      progress("profiling: stackl serve and 1 worker under --cpu-prof");
      const prof = await startStackl("serve", stacklEnv(c), {
        nodeOptions: `--cpu-prof --cpu-prof-dir=${profileRoot}/server`,
      });
      let r: RunResult;
      try {
        r = await runStackl(c, prof, 1, { profileDir: profileRoot, label: "STACKL, 1 worker, profiled" });
      } finally {
        await prof.stop();
      }
      process.stdout.write(
        `\n### CPU profile (node --cpu-prof) of the measured window only: ${r.tasks} tasks, 1 worker, ` +
          `${fmtRate(r.perSecond)} tasks/s while profiled\n\n` +
          `CPU per task in this run (whole process, all threads, from /proc): stackl serve ` +
          `${fmtUs(r.cpuUsPerTask.server ?? 0)}, stackl worker ${fmtUs(r.cpuUsPerTask.workers ?? 0)}. ` +
          "A profile's busy time is main-thread wall time that was not idle; it exceeds the CPU time when the " +
          "thread waits for a CPU (preempted inside a syscall on a saturated machine).\n",
      );
      for (const [title, dir, startedAt] of [
        ["stackl serve (RunTask RPCs, outbox relay)", `${profileRoot}/server`, prof.startedAt],
        ["stackl worker (claim, run, fenced commit, ack)", `${profileRoot}/worker-1`, r.workerStartedAt[0] ?? 0],
      ] as const) {
        const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
        if (!file) throw new Error(`no profile written in ${dir}`);
        const window = { fromMs: r.from - startedAt, toMs: r.to - startedAt };
        process.stdout.write(`\n${formatProfile(title, summarizeProfile(path.join(dir, file), window))}`);
      }
    }
  } finally {
    await server?.stop();
    await db.end();
    await nc.close();
    await Promise.all([pgServer.stop(), nats.stop()]);
    if (profileRoot) rmSync(profileRoot, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
