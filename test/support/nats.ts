// A real nats-server (the pinned build from scripts/tools.sh) with JetStream, on 127.0.0.1 and a free port.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { freePort } from "./ports.js";
import { logTail, onProcessExit, removeDirWhenGone, signalPid, toolPath, waitChildExit } from "./tools.js";

export interface NatsServer {
  /** nats://127.0.0.1:<port> */
  url: string;
  port: number;
  storeDir: string;
  /** PID of the current server process (changes after start()). */
  readonly pid: number;
  /** SIGTERM, then waits for the process to exit; no-op if not running. */
  stop(): Promise<void>;
  /** Starts again on the same port and store dir, waits until JetStream answers; no-op if running. */
  start(): Promise<void>;
  /** SIGKILL (a crash), waits for the process to be gone. */
  kill(): Promise<void>;
}

const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;

export async function startNats(opts: { storeDir?: string } = {}): Promise<NatsServer> {
  const bin = toolPath("nats-server");
  const workDir = mkdtempSync(path.join(tmpdir(), "stackl-nats-"));
  const storeDir = opts.storeDir ?? path.join(workDir, "js");
  const logFile = path.join(workDir, "nats-server.log");
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const running = (): boolean => !!child && child.exitCode === null && child.signalCode === null;

  onProcessExit(() => {
    const pid = child?.pid;
    if (pid !== undefined && running()) {
      signalPid(pid, "SIGKILL");
      removeDirWhenGone(workDir, pid);
    } else {
      removeDirWhenGone(workDir);
    }
  });

  const jetStreamReady = async (): Promise<void> => {
    const nc = await connect({ servers: url, reconnect: false, timeout: 1_000 });
    try {
      const jsm = await jetstreamManager(nc, { timeout: 2_000 });
      await jsm.getAccountInfo();
    } finally {
      await nc.close();
    }
  };

  const start = async (): Promise<void> => {
    if (running()) return;
    const logFd = openSync(logFile, "a");
    let c: ChildProcess;
    try {
      c = spawn(bin, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], {
        cwd: workDir,
        stdio: ["ignore", logFd, logFd],
      });
    } finally {
      closeSync(logFd);
    }
    child = c;
    c.unref(); // a forgotten server must not keep the test process alive; onProcessExit kills it
    let spawnError: Error | undefined;
    c.once("error", (err) => {
      spawnError = err;
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let delay = 10;
    let lastErr: unknown;
    for (;;) {
      if (spawnError) throw spawnError;
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(
          `nats-server exited during startup (${c.signalCode ?? `exit ${c.exitCode}`}); log ${logFile}:\n${logTail(logFile)}`,
        );
      }
      try {
        await jetStreamReady();
        return;
      } catch (err) {
        lastErr = err;
      }
      if (Date.now() >= deadline) {
        await kill();
        throw new Error(
          `nats-server JetStream not ready on ${url} within ${READY_TIMEOUT_MS} ms (last error: ${String(lastErr)}); ` +
            `log ${logFile}:\n${logTail(logFile)}`,
        );
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 200);
    }
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || !running() || c.pid === undefined) return;
    signalPid(c.pid, "SIGTERM");
    if (await waitChildExit(c, STOP_TIMEOUT_MS)) return;
    signalPid(c.pid, "SIGKILL");
    await waitChildExit(c, 5_000);
  };

  const kill = async (): Promise<void> => {
    const c = child;
    if (!c || !running() || c.pid === undefined) return;
    signalPid(c.pid, "SIGKILL");
    await waitChildExit(c, 5_000);
  };

  await start();

  return {
    url,
    port,
    storeDir,
    get pid(): number {
      return child?.pid ?? -1;
    },
    start,
    stop,
    kill,
  };
}
