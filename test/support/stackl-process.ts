// Spawns real `stackl` processes (serve, worker, dev) for integration and e2e tests, with logs captured to a file.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { onProcessExit, repoRoot } from "./tools.js";

export interface StacklProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** The captured stdout+stderr so far. */
  logs(): string;
  kill(signal?: NodeJS.Signals): void;
}

const live = new Set<ChildProcess>();
onProcessExit(() => {
  for (const c of live) c.kill("SIGKILL");
});

/** Starts `stackl <args>` (TypeScript sources through tsx) with `env` on top of the current environment. */
export function spawnStackl(args: string[], env: Record<string, string> = {}): StacklProcess {
  const dir = mkdtempSync(path.join(tmpdir(), "stackl-proc-"));
  const logFile = path.join(dir, `${args[0] ?? "stackl"}.log`);
  const fd = openSync(logFile, "a");
  const child = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "src/main.ts"), ...args], {
    cwd: repoRoot,
    env: { ...process.env, STACKL_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", fd, fd],
  });
  live.add(child);
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? -1);
    });
  });
  if (child.pid === undefined) throw new Error(`could not start stackl ${args.join(" ")}`);
  return {
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

/**
 * Re-checks `condition` until it returns a value other than undefined/false, at most every `intervalMs`, failing
 * after `timeoutMs` with `what` and the last value seen.
 */
export async function eventually<T>(
  what: string,
  condition: () => Promise<T | undefined | false>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let lastError: unknown;
  for (;;) {
    try {
      const v = await condition();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}
