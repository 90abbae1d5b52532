// The `stackl` process: (e) a bad config value exits non-zero naming the variable; (f) SIGTERM ends a real
// `stackl serve` promptly with exit code 0; (h) `stackl dev` start-to-healthy time (measured and reported, not asserted).
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, describe, it } from "node:test";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../../gen/grpc/health/v1/health_pb.js";
import { repoRoot, signalPid, waitChildExit } from "../../support/tools.js";
import { grpcJsClient, unary } from "./grpc-js-client.js";

/** Bound on anything a child process is waited for; a hang fails the test instead of stalling the run. */
const PROCESS_TIMEOUT_MS = 30_000;
/** SIGTERM to exit for an idle server (grace is 10 s by default; nothing is in flight, so it must be far quicker). */
const PROMPT_EXIT_MS = 5_000;

interface Stackl {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Resolves with the first stdout line matching `test`. */
  line(test: (line: string) => boolean): Promise<string>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
after(() => {
  for (const child of children) if (child.exitCode === null && child.pid !== undefined) signalPid(child.pid, "SIGKILL");
});

/**
 * Runs `stackl <args>` as a real process: the same Node, the repository's tsx, `src/main.ts`, with its own data
 * directory (removed when it exits) unless STACKL_DATA_DIR is given.
 */
function stackl(args: string[], env: Record<string, string | undefined> = {}): Stackl {
  const dataDir = env.STACKL_DATA_DIR === undefined ? mkdtempSync(path.join(tmpdir(), "stackl-cli-")) : undefined;
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", ...args], {
    cwd: repoRoot,
    env: {
      ...process.env,
      STACKL_PORT: undefined,
      STACKL_LOG_LEVEL: undefined,
      STACKL_DATABASE_URL: undefined,
      STACKL_NATS_URL: undefined,
      ...(dataDir === undefined ? {} : { STACKL_DATA_DIR: dataDir }),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  if (dataDir !== undefined) child.once("exit", () => rmSync(dataDir, { recursive: true, force: true }));
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters: { test: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (l) => {
    stdout.push(l);
    for (const w of [...waiters]) {
      if (w.test(l)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
    }
  });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (l) => stderr.push(l));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const line = (test: (l: string) => boolean): Promise<string> => {
    const seen = stdout.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no such line within ${PROCESS_TIMEOUT_MS} ms:\n${tail()}`)),
        PROCESS_TIMEOUT_MS,
      );
      timer.unref();
      waiters.push({
        test,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      void exit.then(() => reject(new Error(`stackl exited before printing the line:\n${tail()}`)));
    });
  };
  const tail = (): string => [...stdout.slice(-20), ...stderr.slice(-20)].join("\n");
  return { child, stdout, stderr, line, exit };
}

async function exited(s: Stackl, timeoutMs = PROCESS_TIMEOUT_MS): Promise<{ code: number | null }> {
  assert.ok(await waitChildExit(s.child, timeoutMs), `stackl did not exit within ${timeoutMs} ms`);
  return s.exit;
}

function jsonLines(lines: readonly string[]): Record<string, unknown>[] {
  return lines.flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

describe("stackl configuration errors", () => {
  it("STACKL_PORT=abc: `stackl serve` exits non-zero and names STACKL_PORT", async () => {
    const s = stackl(["serve"], { STACKL_PORT: "abc" });
    const { code } = await exited(s);
    assert.equal(code, 2);
    assert.match(s.stderr.join("\n"), /STACKL_PORT: expected an integer 0-65535, got "abc"/);
  });

  it("a bad flag names the flag and its variable; several bad values are all reported", async () => {
    const s = stackl(["serve", "--port", "70000", "--max-message-bytes", "lots"], { STACKL_SHUTDOWN_GRACE: "soon" });
    const { code } = await exited(s);
    assert.equal(code, 2);
    const err = s.stderr.join("\n");
    assert.match(err, /--port \(STACKL_PORT\): expected an integer 0-65535, got "70000"/);
    assert.match(err, /--max-message-bytes \(STACKL_MAX_MESSAGE_BYTES\): expected a size/);
    assert.match(err, /STACKL_SHUTDOWN_GRACE: expected a duration/);
  });

  it("half a TLS configuration, or an unreadable certificate, is refused naming the variable", async () => {
    const half = stackl(["serve"], { STACKL_TLS_CERT: "/nonexistent/cert.pem" });
    assert.equal((await exited(half)).code, 2);
    assert.match(half.stderr.join("\n"), /STACKL_TLS_KEY: expected both STACKL_TLS_CERT and STACKL_TLS_KEY/);
    const unreadable = stackl(["serve", "--port", "0"], {
      STACKL_TLS_CERT: "/nonexistent/cert.pem",
      STACKL_TLS_KEY: "/nonexistent/key.pem",
      STACKL_LOG_LEVEL: "silent",
    });
    assert.equal((await exited(unreadable)).code, 2);
    assert.match(unreadable.stderr.join("\n"), /STACKL_TLS_CERT: cannot read "\/nonexistent\/cert\.pem" \(ENOENT\)/);
  });

  it("a database URL with a password is never echoed back", async () => {
    const s = stackl(["serve"], { STACKL_DATABASE_URL: "mysql://admin:hunter2@db/stackl" });
    assert.equal((await exited(s)).code, 2);
    const err = s.stderr.join("\n");
    assert.match(err, /STACKL_DATABASE_URL: expected a postgres:\/\/ URL/);
    assert.doesNotMatch(err, /hunter2/);
  });
});

describe("stackl commands", () => {
  it("--help works everywhere; version prints version, node and platform", async () => {
    for (const args of [
      ["--help"],
      ["serve", "--help"],
      ["worker", "--help"],
      ["dev", "--help"],
      ["version", "--help"],
    ]) {
      const s = stackl(args);
      assert.equal((await exited(s)).code, 0, args.join(" "));
      assert.match(s.stdout.join("\n"), /Usage: stackl/, args.join(" "));
    }
    const version = stackl(["version"]);
    assert.equal((await exited(version)).code, 0);
    assert.match(version.stdout.join("\n"), /^stackl \d+\.\d+\.\d+ \(node v\d+\.\d+\.\d+, [a-z0-9]+-[a-z0-9]+\)$/);
  });
});

describe("stackl serve as a process", () => {
  it("serves health over gRPC, then exits 0 promptly on SIGTERM after a graceful drain", async (t) => {
    const s = stackl(["serve", "--port", "0"], { STACKL_LOG_LEVEL: "info" });
    const running = JSON.parse(await s.line((l) => l.includes('"msg":"server running"'))) as { url: string };
    const port = new URL(running.url).port;
    const health = grpcJsClient(Health, `127.0.0.1:${port}`);
    try {
      const res = await unary(health, Health.method.check, { service: "" });
      assert.equal(res.status, Serving.SERVING);
    } finally {
      health.close();
    }
    const sent = performance.now();
    signalPid(s.child.pid as number, "SIGTERM");
    const { code } = await exited(s, PROMPT_EXIT_MS);
    t.diagnostic(`SIGTERM to exit: ${(performance.now() - sent).toFixed(0)} ms`);
    assert.equal(code, 0);
    const msgs = jsonLines(s.stdout).map((l) => l.msg);
    for (const m of ["server draining", "server stopped", "stackl stopped"]) assert.ok(msgs.includes(m), m);
  });
});

describe("stackl dev", () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), "stackl-dev-"));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it("starts healthy on the embedded defaults, prints the address and a next step (start-to-healthy measured)", async (t) => {
    const spawned = performance.now();
    const s = stackl(["dev", "--port", "0", "--data-dir", dataDir], { STACKL_DATABASE_URL: "postgres://ignored/db" });
    const banner = await s.line((l) => l.startsWith("STACKL dev ready at "));
    const url = /ready at (http:\/\/[^ ]+)/.exec(banner)?.[1] as string;
    const health = grpcJsClient(Health, new URL(url).host);
    try {
      const res = await unary(health, Health.method.check, { service: "" });
      assert.equal(res.status, Serving.SERVING);
    } finally {
      health.close();
    }
    const measured = performance.now() - spawned;
    const reported = /healthy ([\d.]+) s after process start/.exec(banner)?.[1];
    t.diagnostic(`stackl dev start-to-healthy: ${measured.toFixed(0)} ms from spawn to a SERVING Health.Check`);
    t.diagnostic(`stackl dev reports: healthy ${reported} s after process start (module loading included)`);
    const out = s.stdout.join("\n");
    assert.match(out, new RegExp(`grpcurl -plaintext ${new URL(url).host} list`));
    assert.match(out, new RegExp(dataDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    signalPid(s.child.pid as number, "SIGINT");
    assert.equal((await exited(s, PROMPT_EXIT_MS)).code, 0);
    // dev ignores STACKL_DATABASE_URL (it always runs embedded) and says so.
    assert.match(s.stderr.join("\n"), /dev ignores these variables/);
  });
});
