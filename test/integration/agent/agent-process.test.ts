// `stackl-agent` as a real process: from source (node --import tsx agent/src/main.ts) and as the single-file SEA
// binary built by agent/build.mjs, against the fake server. Covers flags, SIGTERM drain, a crash (SIGKILL) and
// restart recovering the job from the journal, and the binary running a mock job.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { JobOutcome } from "../../../gen/stackl/v1/agents_pb.js";
import { FakeAgentServer } from "../../support/fake-agent-server.js";
import { repoRoot, waitChildExit } from "../../support/tools.js";
import { mockSpec, shellSpec } from "./harness.js";
import { processGroup } from "./proc.js";

const SOURCE = [process.execPath, "--import", "tsx", path.join(repoRoot, "agent", "src", "main.ts")];
let scratch: string;

before(() => {
  scratch = mkdtempSync(path.join(tmpdir(), "stackl-agent-proc-"));
});

after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

interface AgentProcess {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

function spawnAgent(cmd: readonly string[], args: string[], env: NodeJS.ProcessEnv = {}): AgentProcess {
  const child = spawn(cmd[0]!, [...cmd.slice(1), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => out, exit };
}

function agentArgs(server: FakeAgentServer, stateDir: string, extra: string[] = []): string[] {
  return [
    "--server",
    server.url,
    "--token",
    server.token,
    "--name",
    "proc-agent",
    "--state-dir",
    stateDir,
    "--handlers",
    "shell,mock",
    ...extra,
  ];
}

async function stop(p: AgentProcess): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) {
    p.child.kill("SIGKILL");
    await waitChildExit(p.child, 5_000);
  }
}

describe("stackl-agent process (from source)", () => {
  test("--version, --help, and a bad option exits 2 naming it", () => {
    assert.match(
      execFileSync(SOURCE[0]!, [...SOURCE.slice(1), "--version"], { cwd: repoRoot, encoding: "utf8" }),
      /^stackl-agent \d/,
    );
    assert.match(
      execFileSync(SOURCE[0]!, [...SOURCE.slice(1), "--help"], { cwd: repoRoot, encoding: "utf8" }),
      /--drain-timeout/,
    );
    assert.throws(
      () =>
        execFileSync(SOURCE[0]!, [...SOURCE.slice(1), "--server", "http://x:1", "--capacity", "lots"], {
          cwd: repoRoot,
          stdio: "pipe",
        }),
      (err: { status: number; stderr: Buffer }) =>
        err.status === 2 && /--capacity must be an integer from 1 to 1024, got "lots"/.test(err.stderr.toString()),
    );
  });

  test("SIGTERM drains: the running job finishes, its result is delivered, exit code 0", async () => {
    const server = await FakeAgentServer.start();
    const p = spawnAgent(SOURCE, agentArgs(server, path.join(scratch, "drain")));
    try {
      const hello = await server.next("hello", () => true, 20_000);
      assert.equal(hello.name, "proc-agent");
      server.offer("p-drain", mockSpec({ log: "working", sleep_ms: 500, outputs: { done: true } }));
      await server.next("jobAccepted");
      p.child.kill("SIGTERM");
      const r = await server.result("p-drain");
      assert.equal(r.outcome, JobOutcome.SUCCEEDED);
      assert.equal(await p.exit, 0, p.output());
      const lines = p
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(
        lines.every((l) => l.agent === "proc-agent"),
        "every log line names the agent",
      );
      assert.ok(
        lines.some((l) => l.job === "p-drain" && l.epoch === 1),
        "job lines carry job and epoch",
      );
      assert.ok(lines.some((l) => l.msg === "session draining"));
      assert.ok(lines.some((l) => l.msg === "session stopped"));
      assert.ok(!p.output().includes(server.token), "the enrollment token is never logged");
    } finally {
      await stop(p);
      await server.close();
    }
  });

  test("crash and restart: the leftover process group is stopped and the job reported FAILED from the journal", async () => {
    const server = await FakeAgentServer.start();
    const stateDir = path.join(scratch, "crash");
    const first = spawnAgent(SOURCE, agentArgs(server, stateDir));
    let second: AgentProcess | undefined;
    try {
      await server.next("hello", () => true, 20_000);
      server.offer("p-crash", shellSpec(["sh", "-c", "trap '' TERM; echo pgid=$$; sleep 1000 & wait"]));
      let pgid = 0;
      await server.waitFor(() => {
        pgid = Number(/pgid=(\d+)/.exec(server.logText("p-crash"))?.[1] ?? 0);
        return pgid > 0 && processGroup(pgid).length >= 2;
      });
      first.child.kill("SIGKILL");
      await first.exit;
      assert.ok(processGroup(pgid).length >= 1, "the job's processes outlived the agent (own process group)");
      const persisted = (server.logs.get("p-crash") ?? []).length;

      second = spawnAgent(SOURCE, agentArgs(server, stateDir));
      const hello = await server.next("hello", (h) => h.jobsInFlight.length > 0, 20_000);
      assert.equal(hello.credential.case, "agentCredential");
      assert.deepEqual(
        hello.jobsInFlight.map((j) => ({ id: j.jobId, epoch: j.epoch, finished: j.finished, seq: j.nextLogSeq })),
        [{ id: "p-crash", epoch: 1n, finished: true, seq: 0n }],
      );
      assert.deepEqual(processGroup(pgid), [], "leftover processes were stopped on restart");
      const r = await server.result("p-crash");
      assert.equal(r.outcome, JobOutcome.FAILED);
      assert.match(r.error, /agent restarted while this job was running; its process group \d+ was stopped/);
      const seqs = (server.logs.get("p-crash") ?? []).map((c) => Number(c.seq));
      assert.deepEqual(
        seqs,
        Array.from({ length: persisted + 1 }, (_, i) => i + 1),
      );
      assert.deepEqual(server.gaps, []);
      second.child.kill("SIGTERM");
      assert.equal(await second.exit, 0, second.output());
    } finally {
      await stop(first);
      if (second) await stop(second);
      await server.close();
    }
  });
});

describe("stackl-agent single binary (SEA)", () => {
  test("builds, prints its version, and runs a mock and a shell job against the server", async () => {
    const bin = path.join(scratch, "sea", "stackl-agent");
    const build = execFileSync(process.execPath, [path.join(repoRoot, "agent", "build.mjs"), "--out", bin], {
      cwd: repoRoot,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 180_000,
    });
    process.stdout.write(`# ${build.trim().split("\n").at(-1)}\n`);
    assert.ok(statSync(bin).size > 10 * 1024 * 1024);
    assert.match(execFileSync(bin, ["--version"], { encoding: "utf8" }), /^stackl-agent 0\.1\.0/);

    const server = await FakeAgentServer.start();
    const p = spawnAgent([bin], agentArgs(server, path.join(scratch, "sea-state")));
    try {
      await server.next("hello", () => true, 20_000);
      server.offer("sea-1", mockSpec({ log: "hello from the single binary", outputs: { binary: "sea" } }));
      const r = await server.result("sea-1");
      assert.equal(r.outcome, JobOutcome.SUCCEEDED, r.error);
      assert.deepEqual(r.outputs, { binary: "sea" });
      assert.match(server.logText("sea-1"), /hello from the single binary/);
      server.offer(
        "sea-2",
        shellSpec(["sh", "-c", 'echo "shell from $STACKL_JOB_ID"; echo \'{"ok":true}\' > "$STACKL_OUTPUTS_FILE"']),
      );
      const shell = await server.result("sea-2");
      assert.equal(shell.outcome, JobOutcome.SUCCEEDED, shell.error);
      assert.deepEqual(shell.outputs, { ok: true });
      assert.match(server.logText("sea-2"), /shell from sea-2/);
      p.child.kill("SIGTERM");
      assert.equal(await p.exit, 0, p.output());
    } finally {
      await stop(p);
      await server.close();
    }
  });
});
