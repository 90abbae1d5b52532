/**
 * End-to-end benchmark (issue 7, item 3): ad-hoc jobs submitted through the public API of a multi-process STACKL
 * cluster on 127.0.0.1 — JobService.RunJob (no wait) → job row in PostgreSQL (+ NOTIFY) → doorbell on NATS → the
 * replica holding an agent's stream claims the job (UPDATE … SKIP LOCKED) → JobOffer over the agent's bidi stream →
 * a real `stackl-agent` process runs the `mock` handler → accepted / log chunks / result over the stream → PostgreSQL
 * — measured as jobs/s (first submit → last job terminal) and submit→agent latency p50/p99, at concurrency 1 and 64
 * (closed loop on the RunJob answer) and paced at a low fixed rate (open loop: the unloaded latency), for 1 and 2
 * `stackl serve` replicas × 1 and 4 agents (capacity 16 each; one `stackl worker` runs too, though ad-hoc jobs do
 * not pass through it).
 *
 * In the same run, a raw baseline doing the same hops with no STACKL code (bench/lib/e2e-raw-server.ts, a child
 * process): a Connect unary call, an INSERT, a JetStream publish, a pull (consume), a push over a connect-node bidi
 * stream to a fake agent in this process (bench/lib/e2e-fake-agent.ts), the agent's reply, and an UPDATE. Every
 * STACKL phase runs between two raw phases of the same shape (same agents, same load), and its ratios use the mean
 * of that pair, so that both see the same (shared, noisy) machine.
 *
 *   npx tsx bench/e2e.ts [--quick] [--jobs N] [--jobs-c1 N] [--jobs-paced N] [--rate R] [--warmup N] [--no-profile]
 *                        [--synchronous-commit off]
 *
 * --jobs        jobs per configuration at concurrency 64 (default 1000)
 * --jobs-c1     jobs per configuration at concurrency 1 (default 200)
 * --jobs-paced  jobs per configuration in the paced (open-loop) phase (default 80)
 * --rate        the paced phase's rate, jobs/s (default 20)
 * --warmup      jobs run (unmeasured) before each measurement (default 64)
 * --quick       300 / 60 / 40 jobs, warm-up 32 (a smoke run)
 * --no-profile  skip the diagnostic run (`node --cpu-prof` on a replica, an agent and the raw baseline process;
 *               PostgreSQL wait events, CPU by backend, planning vs execution time)
 * --synchronous-commit off
 *               an experiment, not a measurement of the product: PostgreSQL commits without waiting for the WAL
 *               flush, for STACKL and the baseline alike (shows how much of the time is commit latency)
 *
 * How submit→agent is measured, for STACKL: from the wall clock just before RunJob is called (this process) to the
 * `time` of the agent's "job accepted" log line (the stackl-agent process logs it synchronously in its JobOffer
 * handler, after decoding the offer and writing its ~100-byte job journal file, before replying). Both clocks are
 * the same host's CLOCK_REALTIME; the agent's is truncated to the millisecond, so the submit time is truncated
 * too (the difference is unbiased, ±1 ms per sample). Cross-checks printed alongside: the job row's `offered_at`
 * (PostgreSQL `now()` of the claim statement, microseconds: a lower bound, taken before the offer is even
 * encoded) and the replica's "offering job" log line. For the raw baseline the fake agent records the receive
 * time itself (sub-millisecond). Jobs/s for both: N ÷ (latest `finished_at`/`done_at` in PostgreSQL − first
 * submit).
 *
 * Prints Markdown tables on stdout, progress on stderr. Everything started here is stopped by PID at the end.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { JobService, type JobSpecSchema } from "../gen/stackl/v1/jobs_pb.js";
import { type Cluster, startCluster } from "../test/support/cluster.js";
import { repoRoot } from "../test/support/tools.js";
import { type BenchPg, type NatsServer, pgSettings, startBenchNats, startBenchPostgres } from "./lib/cluster.js";
import { formatProfile, summarizeProfile } from "./lib/cpuprofile.js";
import { FakeAgent } from "./lib/e2e-fake-agent.js";
import {
  claimPlan,
  pgCpuByKind,
  pgCpuDelta,
  planDelta,
  planSnapshot,
  setTrackPlanning,
  WaitSampler,
} from "./lib/e2e-pg-probe.js";
import { machineLine } from "./lib/machine.js";
import { BENCH_MARK, type StatementDelta, shortSql, snapshotStatements, statementDelta } from "./lib/pgstat.js";
import { CpuMeter, type CpuSources, cpuMs, ownCpuMs, treeCpuMs } from "./lib/proc.js";
import { fmtMs, fmtRate, fmtRatio, fmtUs, type LatencySummary, runConcurrent, summarize } from "./lib/stats.js";
import { type Cell, markdownTable, printTable, progress } from "./lib/table.js";

const args = process.argv.slice(2);
const QUICK = args.includes("--quick");
const PROFILE = !args.includes("--no-profile");
const argValue = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const JOBS_C64 = Number(argValue("--jobs") ?? (QUICK ? 300 : 1000));
const JOBS_C1 = Number(argValue("--jobs-c1") ?? (QUICK ? 60 : 200));
const JOBS_PACED = Number(argValue("--jobs-paced") ?? (QUICK ? 40 : 80));
/** `off`: an experiment (PostgreSQL's synchronous_commit for the whole run, STACKL and raw alike). */
const SYNC_COMMIT = argValue("--synchronous-commit");
const PACED_RATE = Number(argValue("--rate") ?? 20);
const WARMUP = Number(argValue("--warmup") ?? (QUICK ? 32 : 64));
const AGENT_CAPACITY = 16;
/** Time limit of one submit loop, and of the wait for its jobs to end (bounds the run). */
const SUBMIT_LIMIT_S = 90;
const DRAIN_LIMIT_MS = 90_000;
const TERMINAL = ["succeeded", "failed", "cancelled", "timed_out"];

const MOCK_SPEC: MessageInitShape<typeof JobSpecSchema> = {
  invocation: { tool: "mock", mock: { outputs: { ok: true } } },
  action: "create",
};

type Mode = { kind: "closed"; concurrency: number } | { kind: "paced"; rate: number };
const MODES: Mode[] = [
  { kind: "paced", rate: PACED_RATE },
  { kind: "closed", concurrency: 1 },
  { kind: "closed", concurrency: 64 },
];
const modeLabel = (m: Mode): string => (m.kind === "closed" ? `c=${m.concurrency}` : `paced ${m.rate}/s`);
const jobsFor = (m: Mode): number => (m.kind === "paced" ? JOBS_PACED : m.concurrency === 1 ? JOBS_C1 : JOBS_C64);

// ---------------------------------------------------------------------------------------------------------------
// Clocks

/**
 * Wall-clock ms with sub-millisecond resolution: Date.now() at the instant its millisecond ticks over, advanced by
 * performance.now() (re-anchored before each phase so that slewing of the real-time clock does not accumulate).
 */
class WallClock {
  private wall = 0;
  private perf = 0;
  constructor() {
    this.anchor();
  }
  anchor(): void {
    const a = Date.now();
    let b = Date.now();
    while (b === a) b = Date.now();
    this.perf = performance.now();
    this.wall = b;
  }
  now(): number {
    return this.wall + (performance.now() - this.perf);
  }
}
const clock = new WallClock();
const now = (): number => clock.now();
/** CLOCK_MONOTONIC in µs: the clock of a V8 .cpuprofile's startTime/endTime. */
const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

// ---------------------------------------------------------------------------------------------------------------
// Results

interface PhaseResult {
  system: "STACKL" | "raw";
  run?: string;
  servers: number;
  agents: number;
  mode: Mode;
  /** Jobs submitted in the measured window. */
  jobs: number;
  /** Jobs that ended well (succeeded for STACKL, done for raw). */
  completed: number;
  jobsPerSecond: number;
  /** RunJob calls per second while submitting. */
  submitPerSecond: number;
  /** Primary: RunJob start → agent received the offer. */
  toAgent: LatencySummary;
  /** RunJob duration as the client saw it. */
  rpc: LatencySummary;
  /** STACKL only: RunJob start → created_at / offered_at (PostgreSQL clock). */
  toCreatedAt?: LatencySummary;
  toOfferedAt?: LatencySummary;
  /** STACKL only: offered_at → agent's "job accepted"; replica's "offering job" log → agent. */
  offeredToAgent?: LatencySummary;
  offerLogToAgent?: LatencySummary;
  /** STACKL only: agent's "job accepted" → finished_at (the job's stay on the agent, incl. persisting its messages). */
  agentToFinished?: LatencySummary;
  /** Jobs without an agent receive time. */
  missing: number;
  cpuMsPerJob: Record<string, number>;
  statements: StatementDelta[];
  /** monotonic µs of the first submit and of the end of the wait (profile windows). */
  monoFrom: number;
  monoTo: number;
}

function label(r: Pick<PhaseResult, "servers" | "agents" | "mode">): string {
  const s = `${r.servers} server${r.servers > 1 ? "s" : ""}`;
  return `${s} × ${r.agents} agent${r.agents > 1 ? "s" : ""}, ${modeLabel(r.mode)}`;
}

const sameMode = (a: Mode, b: Mode): boolean => modeLabel(a) === modeLabel(b);

// ---------------------------------------------------------------------------------------------------------------
// Shared pieces

interface Infra {
  pg: BenchPg;
  nats: NatsServer;
  db: pg.Pool;
}

/** Waits until every job in `ids` is terminal: true, or false after DRAIN_LIMIT_MS. */
async function waitTerminal(db: pg.Pool, table: "jobs" | "raw_jobs", ids: string[]): Promise<boolean> {
  const [sql, params] =
    table === "jobs"
      ? [
          `${BENCH_MARK} SELECT count(*)::int AS n FROM jobs WHERE id = ANY($1::text[]) AND state <> ALL($2::text[])`,
          [ids, TERMINAL],
        ]
      : [`${BENCH_MARK} SELECT count(*)::int AS n FROM raw_jobs WHERE id = ANY($1::text[]) AND state <> 'done'`, [ids]];
  const deadline = Date.now() + DRAIN_LIMIT_MS;
  for (;;) {
    const { rows } = await db.query<{ n: number }>(sql, params);
    if ((rows[0]?.n ?? 0) === 0) return true;
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
}

interface Submitted {
  id: string;
  /** wall ms (fractional) just before the call */
  t0: number;
  rpcMs: number;
}

/**
 * Submits `n` jobs: closed loop (`concurrency` callers, each submitting its next job once answered) or paced (one
 * call every 1/rate s whatever the answers, an open loop). Bounded by `n` and SUBMIT_LIMIT_S.
 */
async function drive(
  mode: Mode,
  n: number,
  call: (i: number) => Promise<string>,
): Promise<{ submitted: Submitted[]; elapsedMs: number }> {
  const submitted: Submitted[] = [];
  const one = async (i: number): Promise<void> => {
    const t0 = now();
    const p0 = performance.now();
    const id = await call(i);
    submitted.push({ id, t0, rpcMs: performance.now() - p0 });
  };
  if (mode.kind === "closed") {
    const { elapsedMs } = await runConcurrent(mode.concurrency, n, SUBMIT_LIMIT_S, one);
    return { submitted, elapsedMs };
  }
  const start = performance.now();
  const calls: Promise<void>[] = [];
  for (let i = 0; i < n && performance.now() - start < SUBMIT_LIMIT_S * 1000; i++) {
    const wait = start + (i * 1000) / mode.rate - performance.now();
    if (wait > 0) await sleep(wait);
    calls.push(one(i));
  }
  await Promise.all(calls);
  return { submitted, elapsedMs: performance.now() - start };
}

function cpuPerJob(before: Record<string, number>, after: Record<string, number>, jobs: number) {
  const d = CpuMeter.delta(before, after);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(d)) out[k] = jobs > 0 ? v / jobs : Number.NaN;
  return out;
}

function sumCpu(pids: () => number[]): () => number {
  return () => pids().reduce((s, pid) => s + cpuMs(pid), 0);
}

/** job id → wall ms of the log lines with message `msg` in a pino JSON-lines file. */
function logTimes(file: string, msg: string, into: Map<string, number>): void {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return;
  }
  const needle = `"msg":"${msg}"`;
  for (const line of text.split("\n")) {
    if (!line.includes(needle)) continue;
    try {
      const o = JSON.parse(line) as { job?: string; time?: string };
      if (o.job && o.time) into.set(o.job, Date.parse(o.time));
    } catch {
      // a partly written line
    }
  }
}

const warmMode = (m: Mode): Mode =>
  m.kind === "closed"
    ? { kind: "closed", concurrency: Math.min(m.concurrency, WARMUP) }
    : { kind: "closed", concurrency: 8 };

// ---------------------------------------------------------------------------------------------------------------
// STACKL

interface StacklRig {
  cluster: Cluster;
  clients: Client<typeof JobService>[];
}

async function stacklPhase(infra: Infra, rig: StacklRig, mode: Mode, n: number): Promise<PhaseResult> {
  const { cluster, clients } = rig;
  const servers = cluster.servers.length;
  const agents = cluster.agents.length;
  const call = async (i: number): Promise<string> => {
    const client = clients[i % clients.length] as Client<typeof JobService>;
    const { job } = await client.runJob({ target: "common", spec: MOCK_SPEC });
    if (!job?.id) throw new Error("RunJob returned no job id");
    return job.id;
  };
  const tag = label({ servers, agents, mode });
  progress(`STACKL ${tag}: warm-up ${WARMUP} jobs`);
  const warm = await drive(warmMode(mode), WARMUP, call);
  if (
    !(await waitTerminal(
      infra.db,
      "jobs",
      warm.submitted.map((s) => s.id),
    ))
  ) {
    throw new Error(`STACKL ${tag}: warm-up jobs did not finish within ${DRAIN_LIMIT_MS} ms`);
  }
  await sleep(300);

  const meter = new CpuMeter({
    [`stackl serve${servers > 1 ? ` ×${servers}` : ""}`]: sumCpu(() => cluster.servers.map((s) => s.pid)),
    "stackl worker": sumCpu(() => cluster.workers.map((w) => w.pid)),
    [`stackl-agent${agents > 1 ? ` ×${agents}` : ""}`]: sumCpu(() => cluster.agents.map((a) => a.pid)),
    postgres: () => treeCpuMs(infra.pg.pid),
    "nats-server": () => cpuMs(infra.nats.pid),
    "bench (load generator)": ownCpuMs,
  } satisfies CpuSources);
  const stBefore = await snapshotStatements(infra.db);
  const cpuBefore = meter.snapshot();
  clock.anchor();
  const monoFrom = monoUs();
  const start = now();
  progress(`STACKL ${tag}: ${n} jobs`);
  const { submitted, elapsedMs } = await drive(mode, n, call);
  const ids = submitted.map((s) => s.id);
  const drained = await waitTerminal(infra.db, "jobs", ids);
  const monoTo = monoUs();
  const cpuAfter = meter.snapshot();
  const stAfter = await snapshotStatements(infra.db);
  if (!drained) progress(`STACKL ${tag}: not every job ended within ${DRAIN_LIMIT_MS} ms`);

  const { rows } = await infra.db.query<{
    id: string;
    state: string;
    created: number;
    offered: number | null;
    finished: number | null;
  }>(
    `${BENCH_MARK} SELECT id, state, extract(epoch FROM created_at)::float8 * 1000 AS created,
            extract(epoch FROM offered_at)::float8 * 1000 AS offered,
            extract(epoch FROM finished_at)::float8 * 1000 AS finished
       FROM jobs WHERE id = ANY($1::text[])`,
    [ids],
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  const accepted = new Map<string, number>();
  for (const a of cluster.agents) logTimes(a.logFile, "job accepted", accepted);
  const offering = new Map<string, number>();
  for (const s of cluster.servers) logTimes(s.logFile, "offering job", offering);

  const toAgent: number[] = [];
  const toOffered: number[] = [];
  const toCreated: number[] = [];
  const offeredToAgent: number[] = [];
  const offerLogToAgent: number[] = [];
  const agentToFinished: number[] = [];
  let missing = 0;
  let lastFinish = 0;
  let completed = 0;
  for (const s of submitted) {
    const row = byId.get(s.id);
    const recv = accepted.get(s.id);
    if (row?.state === "succeeded") completed++;
    if (row?.finished != null) lastFinish = Math.max(lastFinish, row.finished);
    if (row) toCreated.push(row.created - s.t0);
    if (row?.offered != null) toOffered.push(row.offered - s.t0);
    if (recv === undefined) {
      missing++;
      continue;
    }
    toAgent.push(recv - Math.floor(s.t0));
    if (row?.offered != null) offeredToAgent.push(recv - Math.floor(row.offered));
    if (row?.finished != null) agentToFinished.push(Math.floor(row.finished) - recv);
    const off = offering.get(s.id);
    if (off !== undefined) offerLogToAgent.push(recv - off);
  }
  const r: PhaseResult = {
    system: "STACKL",
    servers,
    agents,
    mode,
    jobs: submitted.length,
    completed,
    jobsPerSecond: (completed / (lastFinish - start)) * 1000,
    submitPerSecond: (submitted.length / elapsedMs) * 1000,
    toAgent: summarize(toAgent),
    rpc: summarize(submitted.map((s) => s.rpcMs)),
    toCreatedAt: summarize(toCreated),
    toOfferedAt: summarize(toOffered),
    offeredToAgent: summarize(offeredToAgent),
    offerLogToAgent: summarize(offerLogToAgent),
    agentToFinished: summarize(agentToFinished),
    missing,
    cpuMsPerJob: cpuPerJob(cpuBefore, cpuAfter, submitted.length),
    statements: statementDelta(stBefore, stAfter),
    monoFrom,
    monoTo,
  };
  progress(
    `STACKL ${tag}: ${fmtRate(r.jobsPerSecond)} jobs/s, submit→agent p50 ${fmtMs(r.toAgent.p50)} ` +
      `p99 ${fmtMs(r.toAgent.p99)} (${completed}/${submitted.length} succeeded` +
      `${missing ? `, ${missing} not in the agent log` : ""})`,
  );
  return r;
}

/** Enrolls and connects `count` more agents (pool `common`), round robin over the replicas, in parallel. */
async function addAgents(cluster: Cluster, count: number, prefix: string): Promise<void> {
  const have = cluster.agents.length;
  await Promise.all(
    Array.from({ length: count }, (_, k) => {
      const i = have + k;
      const server = cluster.servers[i % cluster.servers.length] as Cluster["servers"][number];
      return cluster.addAgent(`${prefix}-agent-${i + 1}`, server.url);
    }),
  );
}

async function startStacklRig(infra: Infra, servers: number, env: Record<string, string> = {}): Promise<StacklRig> {
  progress(`starting ${servers} stackl serve + 1 stackl worker`);
  const cluster = await startCluster({
    servers,
    workers: 1,
    agents: 0,
    agentCapacity: AGENT_CAPACITY,
    pg: infra.pg,
    nats: infra.nats,
    env: { STACKL_LOG_LEVEL: "info", ...env },
    log: (line) => progress(`  ${line}`),
  });
  const clients = cluster.servers.map((s) => createClient(JobService, createGrpcTransport({ baseUrl: s.url })));
  return { cluster, clients };
}

/** A STACKL phase and the raw baseline phases of the same shape run just before and just after it. */
interface Pair {
  stackl: PhaseResult;
  before: PhaseResult;
  after: PhaseResult;
}

/**
 * The matrix for one replica count: 1 then 4 agents, each in every mode; each STACKL phase is sandwiched between two
 * raw baseline phases of the same shape (same number of agents, same mode), so that both see the same machine.
 */
async function stacklMatrix(infra: Infra, servers: number, raws: Map<number, RawRig>, into: Pair[]): Promise<void> {
  const rig = await startStacklRig(infra, servers);
  try {
    for (const agents of [1, 4]) {
      await addAgents(rig.cluster, agents - rig.cluster.agents.length, `s${servers}`);
      const raw = raws.get(agents) as RawRig;
      for (const m of MODES) {
        const n = jobsFor(m);
        const before = await rawRun(infra, raw, m, n, "before");
        const stackl = await stacklPhase(infra, rig, m, n);
        const after = await rawRun(infra, raw, m, n, "after");
        into.push({ stackl, before, after });
      }
    }
  } finally {
    progress(`stopping the ${servers}-replica cluster`);
    await rig.cluster.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Raw baseline

interface RawServer {
  child: ChildProcess;
  pid: number;
  url: string;
  stop(): Promise<void>;
}

async function startRawServer(infra: Infra, name: string, nodeOptions?: string): Promise<RawServer> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "bench/lib/e2e-raw-server.ts")], {
    cwd: repoRoot,
    env: {
      ...process.env,
      RAW_DATABASE_URL: infra.pg.url,
      RAW_NATS_URL: infra.nats.url,
      RAW_AGENT_CAPACITY: String(AGENT_CAPACITY),
      RAW_NAME: name,
      ...(nodeOptions ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} ${nodeOptions}`.trim() } : {}),
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error("raw baseline server did not start in 60 s")), 60_000);
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      const m = /listening (\d+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`raw baseline server exited (${code})`));
    });
  });
  return {
    child,
    pid: child.pid as number,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const done = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
      if (!done) {
        child.kill("SIGKILL");
        await exited;
      }
    },
  };
}

async function rawPhase(
  infra: Infra,
  raw: RawServer,
  agents: FakeAgent[],
  client: Client<typeof JobService>,
  mode: Mode,
  n: number,
  run: string,
): Promise<PhaseResult> {
  const call = async (): Promise<string> => {
    const { job } = await client.runJob({ target: "raw", spec: MOCK_SPEC });
    if (!job?.id) throw new Error("raw RunJob returned no job id");
    return job.id;
  };
  const tag = `raw (${run}) ${agents.length} agent(s), ${modeLabel(mode)}`;
  const warm = await drive(warmMode(mode), WARMUP, call);
  if (
    !(await waitTerminal(
      infra.db,
      "raw_jobs",
      warm.submitted.map((s) => s.id),
    ))
  ) {
    throw new Error(`${tag}: warm-up did not finish`);
  }
  await sleep(200);
  const meter = new CpuMeter({
    "raw server": () => cpuMs(raw.pid),
    postgres: () => treeCpuMs(infra.pg.pid),
    "nats-server": () => cpuMs(infra.nats.pid),
    "bench (load generator + fake agents)": ownCpuMs,
  } satisfies CpuSources);
  const stBefore = await snapshotStatements(infra.db);
  const cpuBefore = meter.snapshot();
  clock.anchor();
  const monoFrom = monoUs();
  const start = now();
  const { submitted, elapsedMs } = await drive(mode, n, call);
  const ids = submitted.map((s) => s.id);
  const drained = await waitTerminal(infra.db, "raw_jobs", ids);
  const monoTo = monoUs();
  const cpuAfter = meter.snapshot();
  const stAfter = await snapshotStatements(infra.db);
  if (!drained) progress(`${tag}: not every job ended within ${DRAIN_LIMIT_MS} ms`);
  const { rows } = await infra.db.query<{ id: string; state: string; done: number | null }>(
    `${BENCH_MARK} SELECT id, state, extract(epoch FROM done_at)::float8 * 1000 AS done
       FROM raw_jobs WHERE id = ANY($1::text[])`,
    [ids],
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  const toAgent: number[] = [];
  let missing = 0;
  let completed = 0;
  let lastDone = 0;
  for (const s of submitted) {
    const row = byId.get(s.id);
    if (row?.state === "done") completed++;
    if (row?.done != null) lastDone = Math.max(lastDone, row.done);
    let recv: number | undefined;
    for (const a of agents) recv ??= a.received.get(s.id);
    if (recv === undefined) missing++;
    else toAgent.push(recv - s.t0);
  }
  const r: PhaseResult = {
    system: "raw",
    run,
    servers: 1,
    agents: agents.length,
    mode,
    jobs: submitted.length,
    completed,
    jobsPerSecond: (completed / (lastDone - start)) * 1000,
    submitPerSecond: (submitted.length / elapsedMs) * 1000,
    toAgent: summarize(toAgent),
    rpc: summarize(submitted.map((s) => s.rpcMs)),
    missing,
    cpuMsPerJob: cpuPerJob(cpuBefore, cpuAfter, submitted.length),
    statements: statementDelta(stBefore, stAfter),
    monoFrom,
    monoTo,
  };
  progress(
    `${tag}: ${fmtRate(r.jobsPerSecond)} jobs/s, submit→agent p50 ${fmtMs(r.toAgent.p50)} p99 ${fmtMs(r.toAgent.p99)}`,
  );
  return r;
}

async function connectFakeAgents(url: string, agents: FakeAgent[], count: number, prefix: string): Promise<void> {
  while (agents.length < count) {
    const a = new FakeAgent(url, `${prefix}-${agents.length + 1}`, AGENT_CAPACITY, now);
    agents.push(a);
    await a.welcomed;
  }
}

interface RawRig {
  server: RawServer;
  client: Client<typeof JobService>;
  agents: FakeAgent[];
}

/** A raw baseline server process with `agents` fake agents connected. */
async function startRawRig(infra: Infra, agents: number, name: string, nodeOptions?: string): Promise<RawRig> {
  progress(`raw baseline: starting its server process (${name}, ${agents} fake agent${agents > 1 ? "s" : ""})`);
  const server = await startRawServer(infra, name, nodeOptions);
  const rig: RawRig = {
    server,
    client: createClient(JobService, createGrpcTransport({ baseUrl: server.url })),
    agents: [],
  };
  await connectFakeAgents(server.url, rig.agents, agents, `${name}-agent`);
  return rig;
}

async function stopRawRig(rig: RawRig): Promise<void> {
  for (const a of rig.agents) a.close();
  await rig.server.stop();
}

const rawRun = (infra: Infra, rig: RawRig, mode: Mode, n: number, run: string): Promise<PhaseResult> =>
  rawPhase(infra, rig.server, rig.agents, rig.client, mode, n, run);

// ---------------------------------------------------------------------------------------------------------------
// Diagnostic run: profiles and PostgreSQL probes

function profileFile(dir: string, pid: number): string | undefined {
  try {
    const f = readdirSync(dir).find((name) => name.endsWith(".cpuprofile") && name.includes(`.${pid}.`));
    return f === undefined ? undefined : path.join(dir, f);
  } catch {
    return undefined;
  }
}

/** The measured window of a phase, relative to the start of a profile (both CLOCK_MONOTONIC µs). */
function windowOf(file: string, r: PhaseResult): { fromMs: number; toMs: number } {
  const p = JSON.parse(readFileSync(file, "utf8")) as { startTime: number };
  return { fromMs: (r.monoFrom - p.startTime) / 1000, toMs: (r.monoTo - p.startTime) / 1000 };
}

interface Probe {
  waits: WaitSampler;
  cpuBefore: Map<string, number>;
  planBefore: Awaited<ReturnType<typeof planSnapshot>>;
}

async function probeStart(infra: Infra, app: string): Promise<Probe> {
  return {
    cpuBefore: await pgCpuByKind(infra.db, infra.pg.pid),
    planBefore: await planSnapshot(infra.db),
    waits: new WaitSampler(infra.db, app),
  };
}

async function probeReport(infra: Infra, probe: Probe, title: string, jobs: number): Promise<string> {
  await probe.waits.stop();
  const cpu = pgCpuDelta(probe.cpuBefore, await pgCpuByKind(infra.db, infra.pg.pid));
  const plans = planDelta(probe.planBefore, await planSnapshot(infra.db)).filter(
    (p) => !p.query.includes("pg_stat_activity") && !p.query.includes("pg_stat_statements"),
  );
  const total = cpu.reduce((s, [, ms]) => s + ms, 0);
  const planTotal = plans.reduce((s, p) => s + p.planMs, 0);
  const execTotal = plans.reduce((s, p) => s + p.execMs, 0);
  return [
    `#### PostgreSQL during the ${title}`,
    "",
    `What the active client backends were waiting on (${probe.waits.samples} samples of pg_stat_activity, ` +
      `${probe.waits.meanActive.toFixed(2)} active backends on average):`,
    "",
    markdownTable(["wait event", "mean backends", "share"], probe.waits.rows().slice(0, 10)),
    "",
    `Backends waiting for the lock on the database object that NOTIFY takes at commit (pg_locks, locktype ` +
      `object on pg_database, not granted): ${(probe.waits.notifyLockWaiters / Math.max(1, probe.waits.samples)).toFixed(2)} ` +
      "on average.",
    "",
    `CPU of PostgreSQL processes by kind (/proc; ${fmtUs((total / jobs) * 1000)} per job in all; ` +
      "includes the probes' own queries):",
    "",
    markdownTable(
      ["process", "CPU ms", "per job"],
      cpu.slice(0, 10).map(([k, ms]) => [k, ms.toFixed(0), fmtUs((ms / jobs) * 1000)]),
    ),
    "",
    `Planning vs execution per statement (pg_stat_statements, track_planning on): planning ` +
      `${fmtUs((planTotal / jobs) * 1000)} per job, execution ${fmtUs((execTotal / jobs) * 1000)} per job.`,
    "",
    markdownTable(
      ["statement", "per job", "plan µs / call", "exec µs / call"],
      plans
        .slice(0, 8)
        .map((p) => [
          p.query.replaceAll("|", "\\|"),
          (p.calls / jobs).toFixed(2),
          ((p.planMs / p.calls) * 1000).toFixed(0),
          ((p.execMs / p.calls) * 1000).toFixed(0),
        ]),
    ),
    "",
  ].join("\n");
}

async function diagnosticRun(infra: Infra): Promise<string[]> {
  const dir = mkdtempSync(path.join(tmpdir(), "stackl-bench-e2e-prof-"));
  const out: string[] = [];
  const prof = (sub: string) => `--cpu-prof --cpu-prof-dir=${path.join(dir, sub)}`;
  const mode: Mode = { kind: "closed", concurrency: 64 };
  await setTrackPlanning(infra.db, true);
  try {
    // STACKL: the replica (and the worker) under --cpu-prof; 4 agents of which the first is profiled too.
    const rig = await startStacklRig(infra, 1, { NODE_OPTIONS: prof("stackl") });
    let r: PhaseResult | undefined;
    let agentPid = 0;
    let pgReport = "";
    try {
      const saved = process.env.NODE_OPTIONS;
      process.env.NODE_OPTIONS = `${saved ?? ""} ${prof("agent")}`.trim();
      try {
        await addAgents(rig.cluster, 1, "prof");
      } finally {
        if (saved === undefined) delete process.env.NODE_OPTIONS;
        else process.env.NODE_OPTIONS = saved;
      }
      agentPid = rig.cluster.agents[0]?.pid ?? 0;
      await addAgents(rig.cluster, 3, "prof");
      // A first pass warms up and is not probed; the second is.
      await stacklPhase(infra, rig, mode, WARMUP * 2);
      const probe = await probeStart(infra, "stackl");
      r = await stacklPhase(infra, rig, mode, JOBS_C64);
      pgReport = await probeReport(infra, probe, "STACKL run", r.jobs);
      const agentName = rig.cluster.agents[0]?.name ?? "";
      pgReport +=
        `\nThe claim's row-picking core (JobRepo.claim) on the table as it is after the whole matrix, for ` +
        `${agentName}:\n\n${await claimPlan(infra.db, agentName, "common", ["mock", "shell"])}\n`;
    } finally {
      await rig.cluster.stop();
    }
    const serverPid = rig.cluster.servers[0]?.pid ?? 0;
    out.push(
      `Diagnostic STACKL run (1 server × 4 agents, c=64, ${r.jobs} jobs, profiled and probed): ` +
        `${fmtRate(r.jobsPerSecond)} jobs/s, submit→agent p50 ${fmtMs(r.toAgent.p50)} / p99 ${fmtMs(r.toAgent.p99)}.`,
    );
    for (const [title, sub, pid] of [
      ["stackl serve (the replica: RunJob, claims, the agents' streams)", "stackl", serverPid],
      ["stackl-agent (agent-1 of 4)", "agent", agentPid],
    ] as const) {
      const file = profileFile(path.join(dir, sub), pid);
      if (!file) {
        out.push(`(no profile written for ${title}, pid ${pid})`);
        continue;
      }
      out.push(formatProfile(title, summarizeProfile(file, windowOf(file, r)), 20));
    }
    out.push(pgReport);

    // Raw baseline server under --cpu-prof, same shape (4 fake agents, c=64).
    const raw = await startRawRig(infra, 4, "diag", prof("raw"));
    let rr: PhaseResult | undefined;
    let rawPg = "";
    try {
      await rawRun(infra, raw, mode, WARMUP * 2, "diagnostic warm-up");
      const probe = await probeStart(infra, "raw-baseline");
      rr = await rawRun(infra, raw, mode, JOBS_C64, "diagnostic");
      rawPg = await probeReport(infra, probe, "raw baseline run", rr.jobs);
    } finally {
      await stopRawRig(raw);
    }
    out.push(
      `Diagnostic raw baseline run (4 fake agents, c=64, ${rr.jobs} jobs, profiled and probed): ` +
        `${fmtRate(rr.jobsPerSecond)} jobs/s, submit→agent p50 ${fmtMs(rr.toAgent.p50)} / p99 ${fmtMs(rr.toAgent.p99)}.`,
    );
    const rawFile = profileFile(path.join(dir, "raw"), raw.server.pid);
    out.push(
      rawFile
        ? formatProfile("raw baseline server", summarizeProfile(rawFile, windowOf(rawFile, rr)), 20)
        : "(no profile written for the raw baseline server)",
    );
    out.push(rawPg);
  } finally {
    await setTrackPlanning(infra.db, false).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Report

/** Claim statements per job and their mean execution time (pg_stat_statements; planning not included). */
function claimCell(r: PhaseResult): string {
  const c = r.statements.find((x) => x.query.startsWith("WITH a AS ( SELECT capacity FROM agents"));
  return c === undefined ? "–" : `${(c.calls / r.jobs).toFixed(2)}, ${fmtMs(c.ms / c.calls)}`;
}

function loadLine(): string {
  const [l1, l5] = loadavg();
  return `${l1?.toFixed(2)} / ${l5?.toFixed(2)} (1 / 5 min)`;
}

function meanOf(rs: PhaseResult[], f: (r: PhaseResult) => number): number {
  const v = rs.map(f).filter(Number.isFinite);
  return v.length === 0 ? Number.NaN : v.reduce((a, b) => a + b, 0) / v.length;
}

function report(pairs: Pair[], diagnostic: string[], machine: string): void {
  const stackl = pairs.map((p) => p.stackl);
  const w = process.stdout;
  w.write(`\n## End to end (bench/e2e.ts)\n\n${machine}; load average at the end ${loadLine()}\n`);
  w.write(
    `\nPer configuration: ${JOBS_PACED} jobs paced at ${PACED_RATE}/s (open loop), ${JOBS_C1} at concurrency 1 and ` +
      `${JOBS_C64} at concurrency 64 (closed loop on the RunJob answer), each after ${WARMUP} warm-up jobs; ` +
      `\`mock\` handler; agent capacity ${AGENT_CAPACITY}; RunJob without wait. Each STACKL phase runs between two ` +
      "raw baseline phases of the same shape (same number of agents, same load; one process); the raw figures " +
      "below are the mean of that pair.\n",
  );

  const ratioRows: Cell[][] = [];
  for (const { stackl: s, before, after } of pairs) {
    const b = [before, after];
    const bTp = meanOf(b, (r) => r.jobsPerSecond);
    const b50 = meanOf(b, (r) => r.toAgent.p50);
    const b99 = meanOf(b, (r) => r.toAgent.p99);
    const paced = s.mode.kind === "paced";
    ratioRows.push([
      label(s),
      paced ? "(paced)" : fmtRate(s.jobsPerSecond),
      paced ? "(paced)" : fmtRate(bTp),
      paced ? "–" : fmtRatio(s.jobsPerSecond, bTp),
      fmtMs(s.toAgent.p50),
      fmtMs(b50),
      fmtRatio(s.toAgent.p50, b50),
      fmtMs(s.toAgent.p99),
      fmtMs(b99),
      fmtRatio(s.toAgent.p99, b99),
    ]);
  }
  printTable(
    "STACKL vs the raw baseline (ratios STACKL ÷ raw: throughput < 1 and latency > 1 mean STACKL is slower)",
    [
      "configuration",
      "STACKL jobs/s",
      "raw jobs/s",
      "throughput ratio",
      "STACKL submit→agent p50",
      "raw p50",
      "p50 ratio",
      "STACKL p99",
      "raw p99",
      "p99 ratio",
    ],
    ratioRows,
  );

  printTable(
    'STACKL details (submit = just before RunJob is called; agent = its "job accepted" log line; p50s unless noted)',
    [
      "configuration",
      "succeeded",
      "jobs/s",
      "RunJob/s",
      "RunJob p50 / p99",
      "submit→created_at",
      "submit→offered_at p50 / p99",
      "offered_at→agent",
      "replica offer log→agent",
      "agent→finished_at",
      "claims per job, mean exec",
      "submit→agent p50 / p99",
    ],
    stackl.map((r) => [
      label(r),
      `${r.completed}/${r.jobs}${r.missing ? ` (${r.missing} not in agent log)` : ""}`,
      fmtRate(r.jobsPerSecond),
      fmtRate(r.submitPerSecond),
      `${fmtMs(r.rpc.p50)} / ${fmtMs(r.rpc.p99)}`,
      fmtMs(r.toCreatedAt?.p50 ?? Number.NaN),
      `${fmtMs(r.toOfferedAt?.p50 ?? Number.NaN)} / ${fmtMs(r.toOfferedAt?.p99 ?? Number.NaN)}`,
      fmtMs(r.offeredToAgent?.p50 ?? Number.NaN),
      fmtMs(r.offerLogToAgent?.p50 ?? Number.NaN),
      fmtMs(r.agentToFinished?.p50 ?? Number.NaN),
      claimCell(r),
      `${fmtMs(r.toAgent.p50)} / ${fmtMs(r.toAgent.p99)}`,
    ]),
  );

  const rawRows: Cell[][] = [];
  for (const { stackl: s, before, after } of pairs) {
    for (const r of [before, after]) {
      rawRows.push([
        `${r.run} ${label(s)}`,
        `${r.completed}/${r.jobs}`,
        fmtRate(r.jobsPerSecond),
        fmtRate(r.submitPerSecond),
        `${fmtMs(r.rpc.p50)} / ${fmtMs(r.rpc.p99)}`,
        `${fmtMs(r.toAgent.p50)} / ${fmtMs(r.toAgent.p99)}`,
      ]);
    }
  }
  printTable(
    "Raw baseline runs (Connect unary → INSERT → JetStream publish → consume → bidi push → agent reply → UPDATE; " +
      "one process, the same number of agents as the STACKL phase it brackets)",
    ["run (around STACKL phase)", "done", "jobs/s", "RunJob/s", "RunJob p50 / p99", "submit→agent p50 / p99"],
    rawRows,
  );

  const cpuRows: Cell[][] = [];
  const cpuRow = (name: string, r: PhaseResult): void => {
    const parts = Object.entries(r.cpuMsPerJob).map(([k, v]) => `${k} ${fmtUs(v * 1000)}`);
    const total = Object.values(r.cpuMsPerJob).reduce((a, b) => a + b, 0);
    cpuRows.push([name, fmtUs(total * 1000), fmtRate((cpus().length * 1000) / total), parts.join("; ")]);
  };
  for (const p of pairs) cpuRow(label(p.stackl), p.stackl);
  for (const p of pairs.filter((x) => x.stackl.servers === 1)) {
    cpuRow(`raw: ${p.before.agents} agent${p.before.agents > 1 ? "s" : ""}, ${modeLabel(p.before.mode)}`, p.before);
  }
  printTable(
    "CPU per job (every process, from /proc, 10 ms ticks; depends less on other tenants than the rates do)",
    ["configuration", "total", "jobs/s if it had the cores to itself", "by process"],
    cpuRows,
  );

  const stmtTable = (r: PhaseResult, title: string): void => {
    const perJob = (calls: number) => (calls / r.jobs).toFixed(2);
    const total = r.statements.reduce((s, x) => s + x.calls, 0);
    printTable(
      `${title}: ${perJob(total)} SQL statements per job (pg_stat_statements)`,
      ["statement", "per job", "mean exec ms"],
      r.statements
        .slice(0, 8)
        .map((x) => [shortSql(x.query, 110).replaceAll("|", "\\|"), perJob(x.calls), (x.ms / x.calls).toFixed(3)]),
    );
  };
  const p64 = pairs.find(
    (p) => p.stackl.servers === 1 && p.stackl.agents === 4 && sameMode(p.stackl.mode, MODES[2] as Mode),
  );
  if (p64) {
    stmtTable(p64.stackl, `STACKL ${label(p64.stackl)}`);
    stmtTable(p64.before, "Raw baseline, 4 agents, c=64");
  }

  if (diagnostic.length > 0) {
    w.write(
      "\n### Where the time goes: a separate diagnostic run (node --cpu-prof on the processes; PostgreSQL probes; " +
        "only the measured window is summarised; profiling and probing slow things down)\n\n",
    );
    w.write(`${diagnostic.join("\n\n")}\n`);
  }
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const t0 = Date.now();
  const machine = machineLine();
  progress(machine);
  progress("starting PostgreSQL (stock durability) and NATS");
  const [pgs, nats] = await Promise.all([startBenchPostgres(), startBenchNats()]);
  const db = new pg.Pool({ connectionString: pgs.url, max: 2, application_name: "bench-e2e" });
  db.on("error", () => undefined); // idle connections cut when PostgreSQL stops at the end
  const infra: Infra = { pg: pgs, nats, db };
  const pairs: Pair[] = [];
  const raws = new Map<number, RawRig>();
  let diagnostic: string[] = [];
  try {
    if (SYNC_COMMIT !== undefined) {
      await db.query(`ALTER SYSTEM SET synchronous_commit = ${SYNC_COMMIT === "off" ? "off" : "on"}`);
      await db.query("SELECT pg_reload_conf()");
      await sleep(300);
    }
    progress(`PostgreSQL: ${await pgSettings(pgs.url)}`);
    // Two raw baseline processes (1 and 4 fake agents) stay up through the STACKL matrix; one at a time starts, as
    // each creates the raw table if missing.
    raws.set(1, await startRawRig(infra, 1, "a1"));
    raws.set(4, await startRawRig(infra, 4, "a4"));
    await stacklMatrix(infra, 1, raws, pairs);
    await stacklMatrix(infra, 2, raws, pairs);
    for (const r of raws.values()) await stopRawRig(r);
    raws.clear();
    if (PROFILE) diagnostic = await diagnosticRun(infra);
    report(pairs, diagnostic, machine);
    process.stdout.write(
      `\nPostgreSQL: ${await pgSettings(pgs.url)}. Total run time ${((Date.now() - t0) / 1000).toFixed(0)} s.\n`,
    );
  } finally {
    for (const r of raws.values()) await stopRawRig(r).catch(() => undefined);
    await db.end().catch(() => undefined);
    await Promise.all([pgs.stop(), nats.stop()]);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
