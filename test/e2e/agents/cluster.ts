// Builders for the agent end-to-end tests: a real PostgreSQL and nats-server, real `stackl serve` replicas, and real
// `stackl-agent` processes (from source: node --import tsx agent/src/main.ts), all on loopback. Tests talk to the
// servers through the public API and read PostgreSQL directly for assertions.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AgentService } from "../../../gen/stackl/v1/agents_pb.js";
import { type Job, JobService, type JobSpecSchema, JobState } from "../../../gen/stackl/v1/jobs_pb.js";
import type { Db } from "../../../src/store/db.js";
import { JobRepo, type JobRow } from "../../../src/store/job-repo.js";
import { openDb } from "../../../src/store/open-db.js";
import { type NatsServer, startNats } from "../../support/nats.js";
import { freePort } from "../../support/ports.js";
import { type PgServer, startPostgres } from "../../support/postgres.js";
import { eventually, type StacklProcess, spawnStackl } from "../../support/stackl-process.js";
import { onProcessExit, repoRoot, signalPid } from "../../support/tools.js";

/** Timings shortened for tests: heartbeat 300 ms, disconnected after 1.5 s, sweeps every 300 ms. */
export const FAST_TIMINGS: Record<string, string> = {
  STACKL_AGENT_HEARTBEAT: "300ms",
  STACKL_AGENT_DISCONNECT_AFTER: "1500ms",
  STACKL_SWEEP_PERIOD: "300ms",
  STACKL_SHUTDOWN_GRACE: "3s",
};

export interface Replica {
  readonly name: string;
  readonly url: string;
  readonly proc: StacklProcess;
  readonly jobs: Client<typeof JobService>;
  readonly agents: Client<typeof AgentService>;
}

export interface AgentProc {
  readonly name: string;
  readonly pid: number;
  readonly stateDir: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | string>;
  logs(): string;
  /** Parsed JSON log lines. */
  lines(): Record<string, unknown>[];
  signal(sig: NodeJS.Signals): void;
}

export interface AgentOptions {
  name: string;
  pool?: string;
  token?: string;
  capacity?: number;
  handlers?: string;
  /** Reuse a state dir (credential, journal). */
  stateDir?: string;
  env?: Record<string, string>;
  extraArgs?: string[];
}

const live = new Set<ChildProcess>();
onProcessExit(() => {
  for (const c of live) {
    if (c.pid !== undefined) {
      signalPid(c.pid, "SIGCONT");
      signalPid(c.pid, "SIGKILL");
    }
  }
});

/** One test file's world: PostgreSQL, NATS, replicas and agents; `close()` stops everything it started. */
export class Cluster {
  pg!: PgServer;
  nats!: NatsServer;
  db!: Db;
  repo!: JobRepo;
  readonly replicas: Replica[] = [];
  readonly agentProcs: AgentProc[] = [];
  private scratch = mkdtempSync(path.join(tmpdir(), "stackl-e2e-agents-"));

  static async start(): Promise<Cluster> {
    const c = new Cluster();
    [c.pg, c.nats] = await Promise.all([startPostgres(), startNats()]);
    c.db = await openDb({ url: c.pg.url });
    c.repo = new JobRepo(c.db);
    return c;
  }

  /** Starts `stackl serve` as replica `name` and waits until it answers. */
  async serve(name: string, env: Record<string, string> = {}): Promise<Replica> {
    const port = await freePort();
    const proc = spawnStackl(["serve"], {
      STACKL_DATABASE_URL: this.pg.url,
      STACKL_NATS_URL: this.nats.url,
      STACKL_PORT: String(port),
      STACKL_REPLICA_NAME: name,
      ...FAST_TIMINGS,
      ...env,
    });
    const url = `http://127.0.0.1:${port}`;
    const transport = createGrpcTransport({ baseUrl: url });
    const replica: Replica = {
      name,
      url,
      proc,
      jobs: createClient(JobService, transport),
      agents: createClient(AgentService, transport),
    };
    await eventually(`replica ${name} healthy`, async () => proc.logs().includes("stackl healthy"), {
      timeoutMs: 60_000,
    });
    this.replicas.push(replica);
    return replica;
  }

  /** A single-use enrollment token. */
  async token(replica: Replica, pool: string, opts: { ttlMs?: number; name?: string } = {}): Promise<string> {
    const res = await replica.agents.createEnrollmentToken({
      pool,
      agentName: opts.name ?? "",
      ...(opts.ttlMs === undefined ? {} : { ttl: durationFromMs(opts.ttlMs) }),
    });
    return res.token;
  }

  /** Starts a real `stackl-agent` process against `replica`. */
  agent(replica: Replica, opts: AgentOptions): AgentProc {
    const stateDir = opts.stateDir ?? mkdtempSync(path.join(this.scratch, `${opts.name}-`));
    const logFile = path.join(stateDir, `agent-${Date.now()}.log`);
    const fd = openSync(logFile, "a");
    const args = [
      "--import",
      "tsx",
      path.join(repoRoot, "agent", "src", "main.ts"),
      "--server",
      replica.url,
      "--name",
      opts.name,
      "--pool",
      opts.pool ?? "default",
      "--state-dir",
      stateDir,
      "--capacity",
      String(opts.capacity ?? 4),
      "--handlers",
      opts.handlers ?? "shell,mock",
      "--log-level",
      "debug",
      ...(opts.token === undefined ? [] : ["--token", opts.token]),
      ...(opts.extraArgs ?? []),
    ];
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", fd, fd],
    });
    live.add(child);
    if (child.pid === undefined) throw new Error(`could not start agent ${opts.name}`);
    const exited = new Promise<number | string>((resolve) => {
      child.once("exit", (code, signal) => {
        live.delete(child);
        resolve(code ?? signal ?? -1);
      });
    });
    const logs = (): string => readFileSync(logFile, "utf8");
    const proc: AgentProc = {
      name: opts.name,
      pid: child.pid,
      stateDir,
      child,
      exited,
      logs,
      lines: () =>
        logs()
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      signal: (sig) => signalPid(child.pid as number, sig),
    };
    this.agentProcs.push(proc);
    return proc;
  }

  /** Waits until the agent is connected (as the database says). */
  async connected(name: string, timeoutMs = 60_000): Promise<void> {
    await eventually(
      `agent ${name} connected`,
      async () => {
        const r = await this.db.query<{ state: string }>("SELECT state FROM agents WHERE name = $1", [name]);
        return r.rows[0]?.state === "connected";
      },
      { timeoutMs, intervalMs: 100 },
    );
  }

  async job(id: string): Promise<JobRow> {
    const job = await this.repo.get(id);
    if (job === undefined) throw new Error(`job ${id} not found`);
    return job;
  }

  /** Waits until the job satisfies `cond`. */
  async jobUntil(id: string, what: string, cond: (j: JobRow) => boolean, timeoutMs = 60_000): Promise<JobRow> {
    return eventually(
      `job ${id} ${what}`,
      async () => {
        const j = await this.job(id);
        return cond(j) ? j : undefined;
      },
      { timeoutMs, intervalMs: 100 },
    );
  }

  /** Waits until the job is terminal. */
  async finished(id: string, timeoutMs = 60_000): Promise<JobRow> {
    return this.jobUntil(
      id,
      "finished",
      (j) => ["succeeded", "failed", "cancelled", "timed_out"].includes(j.state),
      timeoutMs,
    );
  }

  /** Stored log chunks of a job, in order. */
  async storedLogs(id: string): Promise<{ seq: number; stream: number; epoch: number; text: string }[]> {
    const r = await this.db.query<{ seq: number; stream: number; epoch: number; data: Uint8Array }>(
      "SELECT seq, stream, epoch, data FROM job_logs WHERE job_id = $1 ORDER BY seq",
      [id],
    );
    return r.rows.map((x) => ({
      seq: Number(x.seq),
      stream: Number(x.stream),
      epoch: Number(x.epoch),
      text: Buffer.from(x.data).toString("utf8"),
    }));
  }

  async close(): Promise<void> {
    for (const a of this.agentProcs) {
      a.signal("SIGCONT");
      a.signal("SIGKILL");
    }
    await Promise.all(this.agentProcs.map((a) => a.exited));
    for (const r of this.replicas) r.proc.kill("SIGTERM");
    await Promise.all(
      this.replicas.map((r) =>
        Promise.race([r.proc.exited, new Promise((res) => setTimeout(res, 10_000))]).then(() => r.proc.kill("SIGKILL")),
      ),
    );
    await this.db?.close();
    await Promise.all([this.pg?.stop(), this.nats?.stop()]);
  }
}

/** A shell job spec. */
export function shell(
  command: string[],
  extra: Omit<MessageInitShape<typeof JobSpecSchema>, "$typeName"> = {},
): MessageInitShape<typeof JobSpecSchema> {
  return { action: "create", ...extra, invocation: { tool: "shell", command, ...extra.invocation } };
}

/** `sh -c script`. */
export function sh(script: string, extra: Omit<MessageInitShape<typeof JobSpecSchema>, "$typeName"> = {}) {
  return shell(["/bin/sh", "-c", script], extra);
}

export function isTerminal(j: Job): boolean {
  return [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT].includes(j.state);
}
