/**
 * Starting what the benchmarks measure, all on 127.0.0.1: a throwaway PostgreSQL (stock durability settings), a
 * nats-server with JetStream, and real `stackl serve` / `stackl worker` processes. Built on test/support; everything
 * started here is stopped by PID (and, as a last resort, by test/support's exit hooks).
 */
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { type NatsServer, startNats } from "../../test/support/nats.js";
import { freePort } from "../../test/support/ports.js";
import { type PgServer, startPostgres } from "../../test/support/postgres.js";
import { type StacklProcess, spawnStackl } from "../../test/support/stackl-process.js";
import { progress } from "./table.js";

export type { NatsServer, PgServer, StacklProcess };

export interface BenchPg extends PgServer {
  /** PID of the postmaster (its backends are its children). */
  readonly pid: number;
}

/**
 * A throwaway PostgreSQL 15 with the stock durability settings (test/support turns fsync off for speed; the
 * benchmarks turn it back on, with full_page_writes and the stock 128MB shared_buffers, so commits cost what they
 * cost in production: `synchronous_commit=on`, `fsync=on`), plus pg_stat_statements in the `stackl` database.
 */
export async function startBenchPostgres(): Promise<BenchPg> {
  const server = await startPostgres();
  const admin = new pg.Client({ connectionString: server.url.replace(/\/stackl$/, "/postgres") });
  await admin.connect();
  try {
    await admin.query("ALTER SYSTEM SET fsync = on");
    await admin.query("ALTER SYSTEM SET full_page_writes = on");
    await admin.query("ALTER SYSTEM SET shared_buffers = '128MB'");
    await admin.query("ALTER SYSTEM SET synchronous_commit = on");
    // Statement counts per operation (bench/lib/pgstat.ts); its overhead is a few % and hits STACKL and the raw
    // baselines alike.
    await admin.query("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'");
  } finally {
    await admin.end();
  }
  await server.restart();
  const db = new pg.Client({ connectionString: server.url });
  await db.connect();
  try {
    await db.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  } finally {
    await db.end();
  }
  return Object.assign(server, {
    get pid(): number {
      return Number(readFileSync(`${server.dataDir}/postmaster.pid`, "utf8").split("\n")[0]);
    },
  });
}

export async function startBenchNats(): Promise<NatsServer> {
  return startNats();
}

/** PostgreSQL's effective settings that matter for write cost, for the report. */
export async function pgSettings(url: string): Promise<string> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const res = await c.query<{ name: string; setting: string; unit: string | null }>(
      `SELECT name, setting, unit FROM pg_settings
        WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers',
                       'wal_sync_method') ORDER BY name`,
    );
    return res.rows.map((r) => `${r.name}=${r.setting}${r.unit ? ` ${r.unit}` : ""}`).join(", ");
  } finally {
    await c.end();
  }
}

export interface StacklHandle {
  readonly proc: StacklProcess;
  readonly pid: number;
  /** http://127.0.0.1:<port> (serve/dev only) */
  readonly url: string;
  /** Date.now() when the process was spawned (≈ the start of a --cpu-prof profile). */
  readonly startedAt: number;
  /** SIGTERM (graceful: drains, writes a --cpu-prof profile), then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartStacklOptions {
  /** Extra NODE_OPTIONS for the child (e.g. `--cpu-prof --cpu-prof-dir=…`). */
  nodeOptions?: string;
  /** How long to wait for /healthz (serve, dev). @default 120 s */
  readyTimeoutMs?: number;
}

/**
 * Starts `stackl serve|dev|worker` with `env` (STACKL_LOG_LEVEL=warn, loopback and a free port unless given). For
 * serve/dev it resolves once GET /healthz answers 200 (store and bus ready); for worker, once the process is up
 * (the caller checks the consumer).
 */
export async function startStackl(
  role: "serve" | "dev" | "worker",
  env: Record<string, string>,
  options: StartStacklOptions = {},
): Promise<StacklHandle> {
  const port = role === "worker" ? 0 : Number(env.STACKL_PORT ?? (await freePort()));
  const fullEnv: Record<string, string> = {
    STACKL_LOG_LEVEL: "warn",
    STACKL_HOST: "127.0.0.1",
    ...(role === "worker" ? {} : { STACKL_PORT: String(port) }),
    ...env,
  };
  if (options.nodeOptions) fullEnv.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} ${options.nodeOptions}`.trim();
  const startedAt = Date.now();
  const proc = spawnStackl([role], fullEnv);
  let exitedWith: number | string | undefined;
  void proc.exited.then((code) => {
    exitedWith = code;
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (graceMs = 20_000): Promise<void> => {
    if (exitedWith !== undefined) return;
    proc.kill("SIGTERM");
    const done = await Promise.race([proc.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      progress(`stackl ${role} (pid ${proc.pid}) did not stop within ${graceMs} ms; SIGKILL`);
      proc.kill("SIGKILL");
      await proc.exited;
    }
  };
  if (role !== "worker") {
    const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
    for (;;) {
      if (exitedWith !== undefined) {
        throw new Error(`stackl ${role} exited (${exitedWith}) before it was healthy:\n${proc.logs().slice(-4000)}`);
      }
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (res.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await stop(2_000);
        throw new Error(`stackl ${role} not healthy at ${url} in time:\n${proc.logs().slice(-4000)}`);
      }
      await sleep(100);
    }
  }
  return { proc, pid: proc.pid, url, startedAt, stop };
}
