import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import type { Readable } from "node:stream";
import { delay } from "./abort.js";
import { HandlerError, type LogFn } from "./handler.js";
import { stopGraceMs } from "./job-stop.js";

/**
 * Runs one process of a job in its own process group (`detached: true`, never through a shell), streams its
 * output with backpressure, and kills the whole group:
 *
 * - on abort (cancel, timeout, shutdown): SIGTERM to the group, SIGKILL after the stop's grace period;
 * - when the main process exits and left members of its group behind (`sleep 1000 &`): SIGTERM, then SIGKILL
 *   after LEFTOVER_GRACE_MS — a finished job leaves nothing running.
 *
 * Daemons that must outlive a job have to leave the group themselves (setsid), as daemons do.
 */

/** Time given to leftover group members after the main process exited, before SIGKILL. */
export const LEFTOVER_GRACE_MS = 2_000;
/** After the group is gone, how long to wait for the output pipes to drain before cutting them. */
export const STDIO_DRAIN_TIMEOUT_MS = 5_000;
/** Bounded wait for the group to vanish after SIGKILL. */
export const KILL_CONFIRM_TIMEOUT_MS = 5_000;
/** Most stdout bytes kept when a handler captures a process's output instead of logging it. */
export const MAX_CAPTURE_BYTES = 16 * 1024 * 1024;

export interface RunProcessOptions {
  argv: readonly string[];
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Aborting kills the process group (see the module comment); the reason's JobStop carries the grace. */
  signal: AbortSignal;
  /** Receives stdout (unless captured) and stderr. */
  log: LogFn;
  /** Keep stdout in memory (returned in `stdout`) instead of logging it. @default false */
  captureStdout?: boolean;
  /** Called with the pid, which is also the process group id. */
  onSpawn?: (pid: number) => void;
}

export interface ProcessExit {
  /** The exit code, or 128 + signal number when killed by a signal. */
  exitCode: number;
  signal: NodeJS.Signals | null;
  /** Captured stdout (empty unless `captureStdout`). */
  stdout: Buffer;
}

/** Signals every member of process group `pgid`; false when there is none. */
export function signalGroup(pgid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}

/** Live (non-zombie) members of process group `pgid`; uses /proc on Linux, `kill(-pgid, 0)` elsewhere. */
export function groupMembers(pgid: number): number[] {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return [];
  }
  if (process.platform !== "linux") return [pgid];
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [pgid];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // "pid (comm) S ppid pgrp …": fields after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z" || fields[0] === "X") continue;
      if (Number(fields[2]) === pgid) out.push(Number(entry));
    } catch {
      // the process went away while we looked
    }
  }
  return out;
}

/** Resolves true once group `pgid` has no live member, false after `timeoutMs`. */
export async function waitGroupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let pause = 5;
  for (;;) {
    if (groupMembers(pgid).length === 0) return true;
    if (Date.now() >= deadline) return false;
    await delay(pause);
    pause = Math.min(pause * 2, 100);
  }
}

/** SIGTERM the group, SIGKILL after `graceMs`, and wait (bounded) until it is gone. */
export async function terminateGroup(pgid: number, graceMs: number): Promise<boolean> {
  if (!signalGroup(pgid, "SIGTERM")) return true;
  if (await waitGroupGone(pgid, graceMs)) return true;
  signalGroup(pgid, "SIGKILL");
  return waitGroupGone(pgid, KILL_CONFIRM_TIMEOUT_MS);
}

/** argv as a shell-like line, for the job log only (it is never executed). */
export function displayArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(" ");
}

function exitCodeOf(code: number | null, sig: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = sig ? constants.signals[sig] : undefined;
  return n === undefined ? -1 : 128 + n;
}

/** Pipes a readable into the log, pausing it while the log buffer is full. Resolves at end/close. */
function pump(source: Readable, onData: (data: Buffer) => void | Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    source.on("data", (data: Buffer) => {
      const wait = onData(data);
      if (wait !== undefined) {
        source.pause();
        void wait.then(() => source.resume());
      }
    });
    source.once("close", () => resolve());
    source.once("error", () => resolve());
  });
}

/** Runs argv (no shell) in a new process group and resolves when it and its group are gone. */
export async function runProcess(options: RunProcessOptions): Promise<ProcessExit> {
  const { argv, signal } = options;
  const file = argv[0];
  if (file === undefined || file === "") throw new HandlerError("empty command");
  signal.throwIfAborted();

  const child = spawn(file, argv.slice(1), {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    shell: false,
    stdio: ["ignore", "pipe", "pipe"],
    windowsHide: true,
  });
  const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, sig) => resolve({ code, sig }));
  });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", () => resolve());
    child.once("error", (err: NodeJS.ErrnoException) => {
      reject(new HandlerError(`cannot start ${file}: ${err.code ?? err.message}`, 127));
    });
  });
  child.on("error", () => {}); // e.g. a failed kill(): the exit event still follows; never crash the agent
  const pgid = child.pid!;
  options.onSpawn?.(pgid);

  const captured: Buffer[] = [];
  let capturedBytes = 0;
  const stdout = child.stdout!;
  const stderr = child.stderr!;
  const pumps = Promise.all([
    pump(stdout, (data) => {
      if (!options.captureStdout) return options.log("stdout", data);
      if (capturedBytes + data.length <= MAX_CAPTURE_BYTES) {
        captured.push(data);
        capturedBytes += data.length;
      }
      return undefined;
    }),
    pump(stderr, (data) => options.log("stderr", data)),
  ]);

  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    const grace = stopGraceMs(signal.reason);
    signalGroup(pgid, "SIGTERM");
    killTimer = setTimeout(() => signalGroup(pgid, "SIGKILL"), grace);
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });

  try {
    const { code, sig } = await exited;
    if (signal.aborted) {
      // SIGKILL follows at the end of the grace period (killTimer) if anything survives SIGTERM.
      if (!(await waitGroupGone(pgid, stopGraceMs(signal.reason) + KILL_CONFIRM_TIMEOUT_MS))) {
        signalGroup(pgid, "SIGKILL");
      }
    } else if (groupMembers(pgid).length > 0) {
      await options.log("system", `main process exited; stopping what is left of its process group ${pgid}\n`);
      await terminateGroup(pgid, LEFTOVER_GRACE_MS);
    }
    const giveUp = new AbortController();
    const drained = await Promise.race([
      pumps.then(() => true),
      delay(STDIO_DRAIN_TIMEOUT_MS, giveUp.signal).then(() => false),
    ]);
    giveUp.abort();
    if (!drained) {
      stdout.destroy();
      stderr.destroy();
    }
    return { exitCode: exitCodeOf(code, sig), signal: sig, stdout: Buffer.concat(captured) };
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (killTimer) clearTimeout(killTimer);
  }
}
