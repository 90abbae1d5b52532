// Locates the pinned external tools installed by scripts/tools.sh, plus small process helpers shared by the
// test servers (postgres.ts, nats.ts): exit-time cleanup and bounded waits for processes to go away.
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

export type ToolName = "nats-server" | "grpcurl" | "opa" | "tofu" | "ansible-playbook" | "pg_ctl";

/** The repository root (this file lives in test/support/). */
export const repoRoot: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

let versionsCache: Readonly<Record<string, string>> | undefined;

/** The KEY=value pairs of scripts/versions.env. */
export function toolVersions(): Readonly<Record<string, string>> {
  if (versionsCache) return versionsCache;
  const file = path.join(repoRoot, "scripts", "versions.env");
  const out: Record<string, string> = {};
  for (const raw of readFileSync(file, "utf8").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`${file}: cannot parse line ${JSON.stringify(raw)}`);
    out[m[1]!] = m[2]!;
  }
  versionsCache = Object.freeze(out);
  return versionsCache;
}

function version(key: string): string {
  const v = toolVersions()[key];
  if (!v) throw new Error(`scripts/versions.env has no ${key}`);
  return v;
}

/** Where scripts/tools.sh caches tools: $STACKL_TOOLS_DIR or ~/.cache/stackl-tools. */
export function toolsDir(): string {
  return process.env.STACKL_TOOLS_DIR || path.join(homedir(), ".cache", "stackl-tools");
}

const cached: Record<Exclude<ToolName, "pg_ctl">, { tool: string; key: string }> = {
  "nats-server": { tool: "nats", key: "NATS_SERVER_VERSION" },
  grpcurl: { tool: "grpcurl", key: "GRPCURL_VERSION" },
  opa: { tool: "opa", key: "OPA_VERSION" },
  tofu: { tool: "tofu", key: "OPENTOFU_VERSION" },
  "ansible-playbook": { tool: "ansible", key: "ANSIBLE_CORE_VERSION" },
};

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

/**
 * The directory holding PostgreSQL's server binaries (initdb, pg_ctl, postgres): the Debian location for the
 * pinned major version, else wherever `initdb` is on PATH.
 */
export function pgBinDir(): string {
  const major = version("POSTGRES_MAJOR");
  const debian = `/usr/lib/postgresql/${major}/bin`;
  if (["initdb", "pg_ctl", "postgres"].every((b) => isExecutable(path.join(debian, b)))) return debian;
  const initdb = onPath("initdb");
  if (initdb) return path.dirname(initdb);
  throw new Error(
    `PostgreSQL ${major} server binaries not found (looked in ${debian} and on PATH). ` +
      `Run \`scripts/tools.sh postgres\` first.`,
  );
}

/** Absolute path of a pinned tool's binary; throws a message naming the install command if it is missing. */
export function toolPath(name: ToolName): string {
  if (name === "pg_ctl") return path.join(pgBinDir(), "pg_ctl");
  const { tool, key } = cached[name];
  const v = version(key);
  const file = path.join(toolsDir(), `${tool}-${v}`, "bin", name);
  if (!isExecutable(file)) {
    throw new Error(`${name} ${v} is not installed (expected ${file}). Run \`scripts/tools.sh ${tool}\` first.`);
  }
  return file;
}

// ---------------------------------------------------------------------------------------------------------
// Process helpers

type Cleanup = () => void;
const cleanups = new Set<Cleanup>();
let hooksInstalled = false;

function runCleanups(): void {
  for (const fn of [...cleanups]) {
    try {
      fn();
    } catch {
      // best effort: the process is going away
    }
  }
  cleanups.clear();
}

/**
 * Registers a synchronous cleanup run when this process exits (normally, via process.exit, or on
 * SIGINT/SIGTERM/SIGHUP — after which the signal is re-raised if nobody else handles it).
 * Returns a function that unregisters it.
 */
export function onProcessExit(fn: Cleanup): () => void {
  if (!hooksInstalled) {
    hooksInstalled = true;
    process.on("exit", runCleanups);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      const handler = (): void => {
        runCleanups();
        process.off(sig, handler);
        if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
      };
      process.on(sig, handler);
    }
  }
  cleanups.add(fn);
  return () => {
    cleanups.delete(fn);
  };
}

/** True if `pid` is a live (non-zombie) process. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    // "pid (comm) S ..." — the state letter follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** PIDs of the direct children of `pid` (Linux /proc). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === pid) out.push(Number(entry));
    } catch {
      // raced with the process exiting
    }
  }
  return out;
}

/** Signals `pid`, ignoring "no such process". */
export function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** Resolves true once every pid is gone, false after `timeoutMs`. Polls (bounded); never a fixed sleep. */
export async function waitPidsGone(pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    if (!pids.some(processAlive)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(delay);
    delay = Math.min(delay * 2, 100);
  }
}

/** Resolves true when the child has exited (and been reaped), false after `timeoutMs`. */
export function waitChildExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    child.ref(); // keep the event loop alive while someone waits on it
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      child.unref();
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      child.unref();
      resolve(true);
    };
    child.once("exit", onExit);
  });
}

/**
 * Removes `dir` once `pid` (if any) has exited, from a detached shell so it works inside a process 'exit'
 * handler, where nothing asynchronous can run any more. Gives up waiting after ~10 s.
 */
export function removeDirWhenGone(dir: string, pid?: number): void {
  const script =
    pid === undefined
      ? `rm -rf -- "$1"`
      : // alive = /proc/<pid>/stat exists and its state is not zombie/dead
        `alive() { s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=\${s##*) }; case $s in Z*|X*) return 1;; esac; }; ` +
        `i=0; while alive "$2" && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; rm -rf -- "$1"`;
  const child = spawn("sh", ["-c", script, "sh", dir, String(pid ?? "")], { detached: true, stdio: "ignore" });
  child.unref();
}

/** The last `lines` lines of a log file, for error messages. */
export function logTail(file: string, lines = 30): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
