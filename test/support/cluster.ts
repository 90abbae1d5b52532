// A STACKL cluster on loopback, every part a separate process: PostgreSQL, nats-server with JetStream, N `stackl
// serve` replicas, M `stackl worker` processes and K `stackl-agent` processes (pool `common`, enrolled with
// single-use tokens). Used by the distributed tests, the cluster command and the end-to-end benchmark.

import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { AgentService } from "../../gen/stackl/v1/agents_pb.js";
import { type NatsServer, startNats } from "./nats.js";
import { freePort } from "./ports.js";
import { type PgServer, startPostgres } from "./postgres.js";
import { eventually, type StacklProcess, spawnStackl } from "./stackl-process.js";
import { repoRoot } from "./tools.js";

export interface ClusterOptions {
  servers?: number;
  workers?: number;
  agents?: number;
  /** Agent capacity. @default 8 */
  agentCapacity?: number;
  /** Extra STACKL_* settings for servers and workers. */
  env?: Record<string, string>;
  /** Reuse running PostgreSQL/NATS. */
  pg?: PgServer;
  nats?: NatsServer;
  log?: (line: string) => void;
}

export interface ClusterProcess extends StacklProcess {
  readonly name: string;
}

export interface Cluster {
  pg: PgServer;
  nats: NatsServer;
  servers: (ClusterProcess & { url: string; port: number })[];
  workers: ClusterProcess[];
  agents: ClusterProcess[];
  env: Record<string, string>;
  /** Starts one more agent (pool `common`) connected to `serverUrl`. */
  addAgent(name: string, serverUrl: string): Promise<ClusterProcess>;
  /** SIGTERM everything (agents, workers, servers), then stop NATS and PostgreSQL. */
  stop(): Promise<void>;
}

function agentProcess(name: string, args: string[]): ClusterProcess {
  const dir = mkdtempSync(path.join(tmpdir(), `stackl-agent-${name}-`));
  const logFile = path.join(dir, "agent.log");
  const fd = openSync(logFile, "a");
  const child = spawn(
    process.execPath,
    ["--import", "tsx", path.join(repoRoot, "agent/src/main.ts"), ...args, "--state-dir", dir],
    {
      cwd: repoRoot,
      env: { ...process.env, STACKL_AGENT_LOG_LEVEL: "info" },
      stdio: ["ignore", fd, fd],
    },
  );
  if (child.pid === undefined) throw new Error(`could not start agent ${name}`);
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, sig) => resolve(code ?? sig ?? -1)),
  );
  return {
    name,
    child,
    pid: child.pid,
    logFile,
    exited,
    logs: () => readFileSync(logFile, "utf8"),
    kill: (signal = "SIGTERM") => {
      child.kill(signal);
    },
  };
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const log = opts.log ?? (() => {});
  const [pg, nats] = await Promise.all([opts.pg ?? startPostgres(), opts.nats ?? startNats()]);
  log(`postgres ${pg.url}`);
  log(`nats ${nats.url}`);
  const env: Record<string, string> = {
    STACKL_DATABASE_URL: pg.url,
    STACKL_NATS_URL: nats.url,
    STACKL_LOG_LEVEL: "info",
    STACKL_SHUTDOWN_GRACE: "5s",
    ...opts.env,
  };
  const servers: Cluster["servers"] = [];
  for (let i = 0; i < (opts.servers ?? 2); i++) {
    const port = await freePort();
    const p = spawnStackl(["serve"], { ...env, STACKL_PORT: String(port), STACKL_REPLICA_NAME: `server-${i + 1}` });
    servers.push(Object.assign(p, { name: `server-${i + 1}`, url: `http://127.0.0.1:${port}`, port }));
  }
  const workers: ClusterProcess[] = [];
  for (let i = 0; i < (opts.workers ?? 3); i++) {
    const p = spawnStackl(["worker"], { ...env, STACKL_REPLICA_NAME: `worker-${i + 1}` });
    workers.push(Object.assign(p, { name: `worker-${i + 1}` }));
  }
  for (const s of servers) {
    const health = createClient(Health, createGrpcTransport({ baseUrl: s.url }));
    await eventually(
      `${s.name} serving`,
      async () => (await health.check({ service: "" })).status === HealthCheckResponse_ServingStatus.SERVING,
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    log(`${s.name} ${s.url} (pid ${s.pid})`);
  }
  for (const w of workers) {
    await eventually(`${w.name} running`, async () => w.logs().includes("stackl worker running"), {
      timeoutMs: 90_000,
    });
    log(`${w.name} (pid ${w.pid})`);
  }
  const agents: ClusterProcess[] = [];
  const addAgent = async (name: string, serverUrl: string): Promise<ClusterProcess> => {
    const client = createClient(AgentService, createGrpcTransport({ baseUrl: serverUrl }));
    const { token } = await client.createEnrollmentToken({
      pool: "common",
      ttl: durationFromMs(600_000),
      agentName: name,
    });
    const a = agentProcess(name, [
      "--server",
      serverUrl,
      "--token",
      token,
      "--name",
      name,
      "--pool",
      "common",
      "--capacity",
      String(opts.agentCapacity ?? 8),
      "--handlers",
      "shell,mock",
    ]);
    await eventually(
      `agent ${name} connected`,
      async () => (await client.getAgent({ name }).catch(() => undefined))?.agent?.state === 1,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    agents.push(a);
    log(`agent ${name} → ${serverUrl} (pid ${a.pid})`);
    return a;
  };
  for (let i = 0; i < (opts.agents ?? 1); i++) {
    await addAgent(`agent-${i + 1}`, (servers[i % servers.length] as (typeof servers)[number]).url);
  }
  return {
    pg,
    nats,
    servers,
    workers,
    agents,
    env,
    addAgent,
    async stop() {
      for (const group of [agents, workers, servers] as ClusterProcess[][]) {
        for (const p of group) p.kill("SIGTERM");
        await Promise.race([Promise.all(group.map((p) => p.exited)), new Promise((r) => setTimeout(r, 15_000))]);
        for (const p of group) p.kill("SIGKILL");
      }
      if (opts.nats === undefined) await nats.stop();
      if (opts.pg === undefined) await pg.stop();
    },
  };
}
