// A throwaway, real PostgreSQL cluster for tests: temp data dir, 127.0.0.1 only, free port, trust auth.
// When the test runs as root (CI containers), the server runs as the `postgres` system user (initdb refuses
// root), spawned directly with that uid/gid so the child PID is the postmaster's.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { appendFileSync, chmodSync, chownSync, closeSync, mkdirSync, mkdtempSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { freePort } from "./ports.js";
import {
  childPids,
  logTail,
  onProcessExit,
  pgBinDir,
  removeDirWhenGone,
  signalPid,
  waitChildExit,
  waitPidsGone,
} from "./tools.js";

export interface PgServer {
  /** postgres://postgres@127.0.0.1:<port>/stackl */
  url: string;
  port: number;
  dataDir: string;
  /** Fast shutdown (SIGINT), waits for the postmaster to exit. Data is kept; no-op if not running. */
  stop(): Promise<void>;
  /** Starts again on the same port and data dir, waits until it accepts connections; no-op if running. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** SIGKILLs the postmaster (a crash); the next start() runs crash recovery. */
  kill(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

interface RunAs {
  uid: number;
  gid: number;
}

function serverUser(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch {
    throw new Error(
      "running as root, but there is no `postgres` system user to run the server as (initdb refuses root). " +
        "Run `scripts/tools.sh postgres` (the Debian package creates the user).",
    );
  }
}

function serverEnv(root: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: root, LC_ALL: "C", LANG: "C" };
  for (const k of Object.keys(env)) if (k.startsWith("PG")) delete env[k];
  return env;
}

function runTool(bin: string, args: string[], root: string, runAs: RunAs | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: root, env: serverEnv(root), stdio: ["ignore", "pipe", "pipe"], ...runAs });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.once("error", reject);
    child.once("close", (code, sig) => {
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(bin)} ${args.join(" ")} failed (${sig ?? `exit ${code}`}):\n${out}`));
    });
  });
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error("startPostgres aborted");
}

export async function startPostgres(opts: { signal?: AbortSignal } = {}): Promise<PgServer> {
  const { signal } = opts;
  if (signal?.aborted) throw abortError(signal);
  const bin = pgBinDir();
  const runAs = serverUser();

  const root = mkdtempSync(path.join(tmpdir(), "stackl-pg-"));
  const dataDir = path.join(root, "data");
  const sockDir = path.join(root, "sock");
  const logFile = path.join(root, "postgres.log");
  mkdirSync(sockDir);
  chmodSync(root, 0o700);
  if (runAs) {
    chownSync(root, runAs.uid, runAs.gid);
    chownSync(sockDir, runAs.uid, runAs.gid);
  }

  let child: ChildProcess | undefined;
  let destroyed = false;
  const unregister = onProcessExit(() => {
    // Synchronous, at process exit: immediate shutdown, then remove the temp dir once the postmaster is gone.
    const pid = child?.pid;
    if (child && pid !== undefined && child.exitCode === null && child.signalCode === null) {
      signalPid(pid, "SIGQUIT");
      removeDirWhenGone(root, pid);
    } else {
      removeDirWhenGone(root);
    }
  });

  try {
    await runTool(
      path.join(bin, "initdb"),
      ["-D", dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
      root,
      runAs,
    );
  } catch (err) {
    unregister();
    removeDirWhenGone(root);
    throw err;
  }
  const port = await freePort();
  appendFileSync(
    path.join(dataDir, "postgresql.conf"),
    [
      "",
      "# --- test/support/postgres.ts ---",
      "listen_addresses = '127.0.0.1'",
      `port = ${port}`,
      `unix_socket_directories = '${sockDir}'`,
      // fsync=off only loses data if the *OS* crashes; a committed transaction still reaches the kernel before
      // COMMIT returns, so kill() (a postmaster crash) loses nothing. Keep synchronous_commit on for that reason.
      "fsync = off",
      "full_page_writes = off",
      "max_connections = 200",
      "shared_buffers = 32MB",
      "logging_collector = off",
      "",
    ].join("\n"),
  );

  const connect = async (database: string): Promise<pg.Client> => {
    const client = new pg.Client({
      host: "127.0.0.1",
      port,
      user: "postgres",
      database,
      connectionTimeoutMillis: 2000,
    });
    client.on("error", () => {}); // a server killed under an idle client must not crash the test process
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
  };

  const running = (): boolean => !!child && child.exitCode === null && child.signalCode === null;

  const start = async (): Promise<void> => {
    if (destroyed) throw new Error("this PostgreSQL server was aborted");
    if (running()) return;
    const logFd = openSync(logFile, "a");
    let c: ChildProcess;
    try {
      c = spawn(path.join(bin, "postgres"), ["-D", dataDir], {
        cwd: root,
        env: serverEnv(root),
        stdio: ["ignore", logFd, logFd],
        ...runAs,
      });
    } finally {
      closeSync(logFd);
    }
    child = c;
    c.unref(); // a forgotten server must not keep the test process alive; onProcessExit stops it
    let spawnError: Error | undefined;
    c.once("error", (err) => {
      spawnError = err;
    });
    // Ready = a real connection succeeds. Bounded; polls with a short backoff.
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let delay = 10;
    let lastErr: unknown;
    for (;;) {
      if (signal?.aborted) {
        await kill();
        throw abortError(signal);
      }
      if (spawnError) throw spawnError;
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(
          `postgres exited during startup (${c.signalCode ?? `exit ${c.exitCode}`}); log ${logFile}:\n${logTail(logFile)}`,
        );
      }
      try {
        const client = await connect("postgres");
        await client.end();
        return;
      } catch (err) {
        lastErr = err;
      }
      if (Date.now() >= deadline) {
        await kill();
        throw new Error(
          `postgres did not accept connections on 127.0.0.1:${port} within ${READY_TIMEOUT_MS} ms ` +
            `(last error: ${String(lastErr)}); log ${logFile}:\n${logTail(logFile)}`,
        );
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 200);
    }
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || !running() || c.pid === undefined) return;
    signalPid(c.pid, "SIGINT"); // fast shutdown: roll back open transactions, checkpoint, exit
    if (await waitChildExit(c, STOP_TIMEOUT_MS)) return;
    signalPid(c.pid, "SIGQUIT"); // immediate shutdown
    if (await waitChildExit(c, 5_000)) return;
    signalPid(c.pid, "SIGKILL");
    await waitChildExit(c, 5_000);
  };

  const kill = async (): Promise<void> => {
    const c = child;
    if (!c || !running() || c.pid === undefined) return;
    const backends = childPids(c.pid);
    signalPid(c.pid, "SIGKILL");
    await waitChildExit(c, 5_000);
    // The postmaster's children notice its death and exit; wait for them so the shared memory is released
    // before a restart (postgres refuses to start while an old segment is still attached).
    if (!(await waitPidsGone(backends, 10_000))) {
      for (const pid of backends) signalPid(pid, "SIGKILL");
      await waitPidsGone(backends, 5_000);
    }
  };

  try {
    await start();
    const admin = await connect("postgres");
    try {
      await admin.query("CREATE DATABASE stackl");
    } finally {
      await admin.end();
    }
  } catch (err) {
    destroyed = true;
    await kill().catch(() => {});
    unregister();
    removeDirWhenGone(root);
    throw err;
  }

  signal?.addEventListener(
    "abort",
    () => {
      void stop();
    },
    { once: true },
  );

  return {
    url: `postgres://postgres@127.0.0.1:${port}/stackl`,
    port,
    dataDir,
    start,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    kill,
  };
}
