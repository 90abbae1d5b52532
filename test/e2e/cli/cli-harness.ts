/**
 * The real `stackl` CLI against a real `stackl dev` (embedded PGlite store, in-process bus and workers), each in its
 * own process: `startDev()` starts the server on a free port in a temporary data directory and waits for it to report
 * SERVING; `cli(...)` runs one command the way a user would (`node --import tsx src/main.ts …`).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { HealthCheckResponse_ServingStatus } from "../../../gen/grpc/health/v1/health_pb.js";
import { createStacklClients } from "../../../src/cli/client.js";
import { onProcessExit, repoRoot, signalPid, waitChildExit } from "../../support/tools.js";

/** How long `stackl dev` may take to become healthy (PGlite migration included). */
const START_DEADLINE_MS = 60_000;
/** How long one CLI command may run before the test fails instead of hanging. */
export const CLI_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 15_000;

export interface DevServer {
  url: string;
  dataDir: string;
  /** Everything the server wrote to stderr so far (JSON logs), for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

const MAIN = ["--import", "tsx", path.join(repoRoot, "src", "main.ts")];

/** Starts `stackl dev --port 0` with its own data directory; resolves once it is SERVING. */
export async function startDev(): Promise<DevServer> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "stackl-cli-e2e-"));
  const child = spawn(process.execPath, [...MAIN, "dev", "--host", "127.0.0.1", "--port", "0"], {
    cwd: repoRoot,
    env: { ...process.env, STACKL_DATA_DIR: dataDir, STACKL_LOG_LEVEL: "info", STACKL_SERVER: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const unregister = onProcessExit(() => child.pid !== undefined && signalPid(child.pid, "SIGKILL"));
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const stop = async (): Promise<void> => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      signalPid(child.pid, "SIGTERM");
      if (!(await waitChildExit(child, STOP_GRACE_MS))) {
        signalPid(child.pid, "SIGKILL");
        await waitChildExit(child, STOP_GRACE_MS);
      }
    }
    unregister();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const url = await readyUrl(child, () => stderr);
    await waitServing(url);
    return { url, dataDir, logs: () => stderr, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The URL from dev's "STACKL dev ready at URL" line (printed once the server is SERVING). */
function readyUrl(child: ChildProcess, logs: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(
      () => fail(new Error(`stackl dev was not ready after ${START_DEADLINE_MS} ms:\n${stdout}\n${logs()}`)),
      START_DEADLINE_MS,
    );
    const onData = (chunk: string): void => {
      stdout += chunk;
      const match = /STACKL dev ready at (\S+)/.exec(stdout);
      if (match?.[1] !== undefined) {
        cleanup();
        resolve(match[1]);
      }
    };
    const onExit = (code: number | null, signal: string | null): void =>
      fail(new Error(`stackl dev exited (${code ?? signal}) before it was ready:\n${stdout}\n${logs()}`));
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.off("exit", onExit);
    };
    const fail = (err: Error): void => {
      cleanup();
      reject(err);
    };
    child.stdout?.setEncoding("utf8").on("data", onData);
    child.once("exit", onExit);
  });
}

/** Confirms SERVING through the public health service (bounded: the ready line already said so). */
async function waitServing(url: string): Promise<void> {
  const { health } = createStacklClients({ server: url });
  const res = await health.check({ service: "" }, { timeoutMs: 10_000 });
  if (res.status !== HealthCheckResponse_ServingStatus.SERVING)
    throw new Error(`health status ${res.status} at ${url}`);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Extra environment (EDITOR, …). */
  env?: Record<string, string>;
  cwd?: string;
}

/** Runs `stackl ARGS` against `server`; never rejects on a non-zero exit (the test looks at `code`). */
export function cli(server: DevServer, args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...MAIN, ...args],
      {
        cwd: options.cwd ?? repoRoot,
        env: { ...process.env, STACKL_SERVER: server.url, NO_COLOR: "1", FORCE_COLOR: "", ...options.env },
        timeout: CLI_TIMEOUT_MS,
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== "number") {
          reject(new Error(`stackl ${args.join(" ")}: ${err.message}\n${stderr}`));
          return;
        }
        resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
      },
    );
  });
}

export interface LiveCli {
  child: ChildProcess;
  /** Everything written to stdout so far. */
  output(): string;
  /** Resolves with the whole output once `pattern` matches it; rejects after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

/** Spawns a long-running `stackl ARGS` (e.g. `tasks -w`) whose output the test reads as it comes. */
export function spawnCli(server: DevServer, args: readonly string[]): LiveCli {
  const child = spawn(process.execPath, [...MAIN, ...args], {
    cwd: repoRoot,
    env: { ...process.env, STACKL_SERVER: server.url, NO_COLOR: "1", FORCE_COLOR: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const unregister = onProcessExit(() => child.pid !== undefined && signalPid(child.pid, "SIGKILL"));
  child.once("exit", unregister);
  let out = "";
  const listeners = new Set<() => void>();
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    for (const listener of listeners) listener();
  });
  return {
    child,
    output: () => out,
    waitFor: (pattern, timeoutMs = CLI_TIMEOUT_MS) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (!pattern.test(out)) return;
          clearTimeout(timer);
          listeners.delete(check);
          resolve(out);
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no ${pattern} in the output after ${timeoutMs} ms:\n${out}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      }),
  };
}
