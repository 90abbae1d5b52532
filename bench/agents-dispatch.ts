/**
 * Agents and jobs benchmark (issue 5), against a real `stackl serve`, PostgreSQL (stock durability settings) and
 * nats-server on 127.0.0.1:
 *
 * 1. Dispatch latency, RunJob sent → JobOffer received by the agent, p50/p99, at concurrency 1 and 64 (protocol-level
 *    load agents in this process, which accept and finish each job at once; pool of 4 × capacity 32).
 * 2. Jobs/s through real `stackl-agent` processes (from source) running the `mock` handler, with 1 and 4 agents:
 *    RunJob → claim → offer → accept → 2 log lines persisted and acked → result → LogAck.
 * 3. Idle agent streams: server RSS before and after opening 1,000 and 5,000 sessions that only Hello + heartbeat
 *    (one HTTP/2 connection each, like real agents), from one load process; sessions per GiB.
 * 4. Time for 1,000 agents to connect (credential) and to enroll (single-use token → credential).
 *
 *   npx tsx bench/agents-dispatch.ts [--quick]
 *
 * Prints Markdown tables on stdout, progress on stderr. Asserts nothing. About 2–3 minutes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import pg from "pg";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import {
  AgentService,
  type ConnectRequestSchema,
  type ConnectResponse,
  JobOutcome,
} from "../gen/stackl/v1/agents_pb.js";
import { JobService, type JobSpecSchema } from "../gen/stackl/v1/jobs_pb.js";
import { startBenchNats, startBenchPostgres, startStackl } from "./lib/cluster.js";
import { machineLine } from "./lib/machine.js";
import { BENCH_MARK, shortSql, snapshotStatements, statementDelta } from "./lib/pgstat.js";
import { cpuMs, treeCpuMs } from "./lib/proc.js";
import { fmtMs, fmtRate, summarize } from "./lib/stats.js";
import { printTable, progress } from "./lib/table.js";

const QUICK = process.argv.includes("--quick");
const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");

type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;

const sha256 = (s: string): string => createHash("sha256").update(s, "utf8").digest("hex");

/**
 * A protocol-level agent: Hello with a credential (or enrollment token), heartbeats at the server's interval; with
 * `complete`, every offer is accepted and finished (SUCCEEDED, no logs) at once. One HTTP/2 connection each.
 */
class LoadAgent {
  readonly offers = new Map<string, number>();
  onOffer: ((jobId: string, at: number) => void) | undefined;
  private readonly queue: Outgoing[] = [];
  private wake: (() => void) | undefined;
  private readonly abort = new AbortController();
  private heartbeat: NodeJS.Timeout | undefined;
  private manager: Http2SessionManager | undefined;
  readonly welcomed: Promise<void>;
  private resolveWelcome!: () => void;
  private rejectWelcome!: (err: unknown) => void;

  constructor(
    private readonly url: string,
    private readonly hello: Outgoing["msg"] & { case: "hello" },
    private readonly complete: boolean,
  ) {
    this.welcomed = new Promise((resolve, reject) => {
      this.resolveWelcome = resolve;
      this.rejectWelcome = reject;
    });
    this.welcomed.catch(() => undefined);
  }

  start(): this {
    this.manager = new Http2SessionManager(this.url, {
      pingIntervalMs: 10_000,
      pingTimeoutMs: 5_000,
      // Not `true`: connect-node 2.2.0 re-arms the idle ping when a stream closes after `abort()`, then pings the
      // destroyed session and throws from a timer (ERR_HTTP2_INVALID_SESSION). A session always has its stream open.
      pingIdleConnection: false,
    });
    const client = createClient(AgentService, createGrpcTransport({ baseUrl: this.url, sessionManager: this.manager }));
    void (async () => {
      try {
        for await (const res of client.connect(this.outbound(), { signal: this.abort.signal })) this.onMessage(res);
        this.rejectWelcome(new Error("stream ended"));
      } catch (err) {
        this.rejectWelcome(err);
      }
    })();
    return this;
  }

  private push(msg: Outgoing): void {
    this.queue.push(msg);
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async *outbound(): AsyncGenerator<Outgoing> {
    yield { msg: this.hello };
    while (!this.abort.signal.aborted) {
      const next = this.queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.abort.signal.addEventListener("abort", () => resolve(), { once: true });
      });
    }
  }

  private onMessage(res: ConnectResponse): void {
    const m = res.msg;
    if (m.case === "welcome") {
      const every = m.value.heartbeatInterval ? durationMs(m.value.heartbeatInterval) : 5_000;
      this.heartbeat = setInterval(() => this.push({ msg: { case: "heartbeat", value: {} } }), every);
      this.resolveWelcome();
    } else if (m.case === "jobOffer") {
      const at = performance.now();
      const { jobId, epoch, nextLogSeq } = m.value;
      this.offers.set(jobId, at);
      this.onOffer?.(jobId, at);
      if (this.complete) {
        this.push({ msg: { case: "jobAccepted", value: { jobId, epoch } } });
        this.push({
          msg: {
            case: "jobResult",
            value: { jobId, epoch, outcome: JobOutcome.SUCCEEDED, lastLogSeq: nextLogSeq - 1n },
          },
        });
      }
    }
  }

  close(): void {
    clearInterval(this.heartbeat);
    this.abort.abort();
    this.manager?.abort();
  }
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : Number.NaN;
}

async function heapUsedBytes(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^nodejs_heap_size_used_bytes(?:\{[^}]*\})? ([\d.e+]+)/m.exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

async function main(): Promise<void> {
  progress(machineLine());
  progress("starting PostgreSQL and NATS");
  const [pgs, nats] = await Promise.all([startBenchPostgres(), startBenchNats()]);
  const env = {
    STACKL_DATABASE_URL: pgs.url,
    STACKL_NATS_URL: nats.url,
    STACKL_REPLICA_NAME: "bench-a",
    STACKL_LOG_LEVEL: "warn",
  };
  const server = await startStackl("serve", env);
  const db = new pg.Pool({ connectionString: pgs.url, max: 4 });
  const transport = createGrpcTransport({ baseUrl: server.url });
  const jobs = createClient(JobService, transport);
  const agentsApi = createClient(AgentService, transport);
  const scratch = mkdtempSync(path.join(tmpdir(), "stackl-bench-agents-"));
  const children: ChildProcess[] = [];
  const load: LoadAgent[] = [];

  /** Agent rows with known credentials, inserted directly (enrollment is measured separately). */
  const provision = async (prefix: string, n: number, pool: string): Promise<string[]> => {
    const names = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    const creds = names.map(() => `sac_${randomBytes(32).toString("base64url")}`);
    await db.query(
      `INSERT INTO agents (name, pool, state, credential_hash, created_at, updated_at)
       SELECT n, $3, 'disconnected', h, now(), now() FROM unnest($1::text[], $2::text[]) AS t(n, h)`,
      [names, creds.map(sha256), pool],
    );
    return creds;
  };
  const connectLoad = async (
    prefix: string,
    creds: string[],
    pool: string,
    opts: { capacity?: number; complete?: boolean; token?: boolean } = {},
  ): Promise<{ agents: LoadAgent[]; ms: number }> => {
    const t0 = performance.now();
    const agents = creds.map((c, i) =>
      new LoadAgent(
        server.url,
        {
          case: "hello",
          value: {
            name: `${prefix}-${i}`,
            pool,
            version: "bench",
            handlers: ["mock", "shell"],
            maxConcurrentJobs: opts.capacity ?? 1,
            credential: opts.token ? { case: "enrollmentToken", value: c } : { case: "agentCredential", value: c },
          },
        },
        opts.complete ?? false,
      ).start(),
    );
    load.push(...agents);
    await Promise.all(agents.map((a) => a.welcomed));
    return { agents, ms: performance.now() - t0 };
  };

  try {
    // ---------------------------------------------------------------- idle sessions and connect time
    progress("warming up (100 sessions opened and closed)");
    const warm = await connectLoad("warm", await provision("warm", 100, "idle"), "idle");
    for (const a of warm.agents) a.close();
    await sleep(3_000);
    const idleRows: (string | number)[][] = [];
    {
      // The framework's floor for comparison: idle grpc.health.v1.Health/Watch streams, one connection each.
      const floorBase = rssKiB(server.pid);
      const floorHeap = await heapUsedBytes(server.url);
      const watchers = Array.from({ length: 1_000 }, () => {
        const abort = new AbortController();
        const manager = new Http2SessionManager(server.url, { pingIntervalMs: 10_000, pingIdleConnection: false });
        const health = createClient(Health, createGrpcTransport({ baseUrl: server.url, sessionManager: manager }));
        const first = (async () => {
          for await (const _ of health.watch({}, { signal: abort.signal })) return;
        })();
        return { abort, manager, first };
      });
      await Promise.all(watchers.map((w) => w.first));
      await sleep(6_000);
      const rss = rssKiB(server.pid);
      const heap = await heapUsedBytes(server.url);
      const per = (rss - floorBase) / 1_000;
      idleRows.push([
        "1,000 Health/Watch streams (framework floor)",
        `${((rss - floorBase) / 1024).toFixed(1)} MiB`,
        `${((heap - floorHeap) / 1024 / 1024).toFixed(1)} MiB`,
        `${per.toFixed(1)} KiB`,
        Math.round((1024 * 1024) / per).toLocaleString("en-US"),
      ]);
      for (const w of watchers) {
        w.abort.abort();
        w.manager.abort();
      }
      await sleep(3_000);
    }
    const baseRss = rssKiB(server.pid);
    const baseHeap = await heapUsedBytes(server.url);
    const connectRows: (string | number)[][] = [];
    let opened = 0;
    for (const target of QUICK ? [1_000] : [1_000, 5_000]) {
      const n = target - opened;
      progress(`opening ${n} idle sessions (total ${target})`);
      const creds = await provision(`idle${target}`, n, "idle");
      const { ms } = await connectLoad(`idle${target}`, creds, "idle");
      opened = target;
      if (target === 1_000) connectRows.push(["1,000 agents connect (credential, all at once)", fmtMs(ms)]);
      await sleep(6_000); // a heartbeat round and a flush
      const rss = rssKiB(server.pid);
      const heap = await heapUsedBytes(server.url);
      const perSessionKiB = (rss - baseRss) / target;
      idleRows.push([
        `${target.toLocaleString("en-US")} agent sessions`,
        `${((rss - baseRss) / 1024).toFixed(1)} MiB`,
        `${((heap - baseHeap) / 1024 / 1024).toFixed(1)} MiB`,
        `${perSessionKiB.toFixed(1)} KiB`,
        Math.round((1024 * 1024) / perSessionKiB).toLocaleString("en-US"),
      ]);
    }
    const { rows: live } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM agents WHERE state = 'connected'",
    );
    progress(`${live[0]?.n} agents connected per the database; closing the idle sessions`);
    for (const a of load.splice(0)) a.close();
    await sleep(2_000);

    progress("enrolling 1,000 agents with single-use tokens");
    const tokens = Array.from({ length: 1_000 }, (_, i) => `enr_bench${i}.${randomBytes(32).toString("base64url")}`);
    await db.query(
      `INSERT INTO enrollment_tokens (id, hash, pool, created_by, created_at, expires_at)
       SELECT 'enr_bench' || i, h, 'enroll', 'bench', now(), now() + interval '1 hour'
         FROM unnest($1::text[]) WITH ORDINALITY AS t(h, i)`,
      [tokens.map(sha256)],
    );
    const enrolled = await connectLoad("enrolled", tokens, "enroll", { token: true });
    connectRows.push(["1,000 agents enroll (token → credential, all at once)", fmtMs(enrolled.ms)]);
    for (const a of load.splice(0)) a.close();
    await sleep(2_000);

    // ---------------------------------------------------------------- dispatch latency
    progress("dispatch latency: 4 load agents × capacity 32 in pool `lat`");
    const lat = await connectLoad("lat", await provision("lat", 4, "lat"), "lat", { capacity: 32, complete: true });
    const waiting = new Map<string, (at: number) => void>();
    const seen = new Map<string, number>();
    for (const a of lat.agents) {
      a.onOffer = (jobId, at) => {
        const w = waiting.get(jobId);
        if (w) w(at);
        else seen.set(jobId, at);
      };
    }
    const mockSpec: MessageInitShape<typeof JobSpecSchema> = { invocation: { tool: "mock" } };
    const dispatchOnce = async (): Promise<number> => {
      const t0 = performance.now();
      const { job } = await jobs.runJob({ target: "lat", spec: mockSpec });
      const id = job?.id ?? "";
      const at = seen.get(id) ?? (await new Promise<number>((resolve) => waiting.set(id, resolve)));
      seen.delete(id);
      waiting.delete(id);
      return at - t0;
    };
    const latencyRows: (string | number)[][] = [];
    for (const [concurrency, perWorker] of QUICK
      ? [
          [1, 100],
          [64, 10],
        ]
      : [
          [1, 300],
          [64, 30],
        ]) {
      for (let i = 0; i < 20; i++) await dispatchOnce(); // warm-up
      const samples: number[] = [];
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: concurrency as number }, async () => {
          for (let i = 0; i < (perWorker as number); i++) samples.push(await dispatchOnce());
        }),
      );
      const s = summarize(samples);
      latencyRows.push([
        concurrency as number,
        s.n,
        fmtMs(s.p50),
        fmtMs(s.p99),
        fmtMs(s.max),
        fmtRate((s.n / (performance.now() - t0)) * 1000),
      ]);
      progress(`concurrency ${concurrency}: p50 ${fmtMs(s.p50)} p99 ${fmtMs(s.p99)}`);
    }
    for (const a of load.splice(0)) a.close();

    // ---------------------------------------------------------------- jobs/s with real agents (mock handler)
    const throughputRows: (string | number)[][] = [];
    const statementRows: (string | number)[][] = [];
    const total = QUICK ? 400 : 1_000;
    for (const agents of [1, 4]) {
      const pool = `tp${agents}`;
      progress(`jobs/s: ${agents} stackl-agent process(es) (mock handler, capacity 32), ${total} jobs`);
      const procs: ChildProcess[] = [];
      for (let i = 0; i < agents; i++) {
        const { token } = await agentsApi.createEnrollmentToken({ pool });
        const child = spawn(
          process.execPath,
          [
            "--import",
            "tsx",
            path.join(repoRoot, "agent", "src", "main.ts"),
            "--server",
            server.url,
            "--token",
            token,
            "--name",
            `${pool}-${i}`,
            "--pool",
            pool,
            "--state-dir",
            path.join(scratch, `${pool}-${i}`),
            "--handlers",
            "mock",
            "--capacity",
            "32",
            "--log-level",
            "warn",
          ],
          { cwd: repoRoot, stdio: ["ignore", "ignore", "inherit"] },
        );
        procs.push(child);
        children.push(child);
      }
      for (;;) {
        const { rows } = await db.query<{ n: number }>(
          `${BENCH_MARK} SELECT count(*)::int AS n FROM agents WHERE pool = $1 AND state = 'connected'`,
          [pool],
        );
        if ((rows[0]?.n ?? 0) >= agents) break;
        await sleep(200);
      }
      // warm-up
      await Promise.all(Array.from({ length: 50 }, () => jobs.runJob({ target: pool, spec: mockSpec })));
      await waitAllDone(db, pool);
      const statsBefore = await snapshotStatements(db);
      const cpuBefore = [cpuMs(server.pid), procs.reduce((a, p) => a + cpuMs(p.pid ?? 0), 0), treeCpuMs(pgs.pid)];
      const t0 = performance.now();
      let submitted = 0;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (submitted < total) {
            submitted++;
            await jobs.runJob({ target: pool, spec: mockSpec });
          }
        }),
      );
      const submitMs = performance.now() - t0;
      await waitAllDone(db, pool);
      const ms = performance.now() - t0;
      const { rows } = await db.query<{ n: number }>(
        `${BENCH_MARK} SELECT count(*)::int AS n FROM jobs WHERE target = $1 AND state = 'succeeded'`,
        [pool],
      );
      const cpuAfter = [cpuMs(server.pid), procs.reduce((a, p) => a + cpuMs(p.pid ?? 0), 0), treeCpuMs(pgs.pid)];
      const perJob = cpuAfter.map((v, i) => `${(((v - (cpuBefore[i] ?? 0)) / total) * 1000).toFixed(0)} µs`);
      const statements = statementDelta(statsBefore, await snapshotStatements(db));
      const perJobStatements = statements.reduce((a, d) => a + d.calls, 0) / total;
      if (agents === 1) {
        statementRows.push(
          ...statements.slice(0, 8).map((d) => [`\`${shortSql(d.query, 80)}\``, (d.calls / total).toFixed(2)]),
        );
      }
      throughputRows.push([
        agents,
        total,
        fmtRate((total / ms) * 1000),
        fmtRate((total / submitMs) * 1000),
        perJob.join(" / "),
        perJobStatements.toFixed(1),
        `${rows[0]?.n}/${total + 50}`,
      ]);
      progress(`${agents} agent(s): ${fmtRate((total / ms) * 1000)} jobs/s`);
      for (const p of procs) p.kill("SIGKILL");
    }

    // ---------------------------------------------------------------- report
    process.stdout.write(`\n## Agents and jobs (bench/agents-dispatch.ts)\n\n${machineLine()}\n`);
    printTable(
      "Dispatch latency: RunJob sent → JobOffer received by the agent",
      ["concurrency", "jobs", "p50", "p99", "max", "jobs/s"],
      latencyRows,
    );
    printTable(
      "Jobs/s through real stackl-agent processes (mock handler; 2 log lines per job persisted and acked)",
      [
        "agents",
        "jobs",
        "jobs/s (end to end)",
        "RunJob/s (submit)",
        "CPU per job: serve / agents / postgres",
        "SQL statements per job",
        "succeeded",
      ],
      throughputRows,
    );
    printTable("SQL statements per job (1 agent), pg_stat_statements", ["statement", "per job"], statementRows);
    printTable(
      "Idle agent streams (Hello + heartbeat every 5 s, one HTTP/2 connection each)",
      ["streams", "server RSS Δ", "V8 heap Δ", "per stream (RSS)", "streams per GiB"],
      idleRows,
    );
    printTable("Connect time", ["what", "time"], connectRows);
  } finally {
    for (const a of load) a.close();
    for (const c of children) c.kill("SIGKILL");
    await db.end().catch(() => undefined);
    await server.stop(5_000);
    await Promise.all([pgs.stop(), nats.stop()]);
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function waitAllDone(db: pg.Pool, target: string): Promise<void> {
  for (;;) {
    const { rows } = await db.query<{ n: number }>(
      `${BENCH_MARK} SELECT count(*)::int AS n FROM jobs
        WHERE target = $1 AND state NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out')`,
      [target],
    );
    if ((rows[0]?.n ?? 0) === 0) return;
    await sleep(50);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
