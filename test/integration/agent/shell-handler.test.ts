// The shell handler with real processes, through a real session against the fake server.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { JobOutcome } from "../../../gen/stackl/v1/agents_pb.js";
import { LogStream } from "../../../gen/stackl/v1/jobs_pb.js";
import { FakeAgentServer } from "../../support/fake-agent-server.js";
import { shellSpec, startAgent, type TestAgent } from "./harness.js";
import { processGroup } from "./proc.js";

const NODE = process.execPath;
let server: FakeAgentServer;
let agent: TestAgent;
let scratch: string;

before(async () => {
  server = await FakeAgentServer.start();
  agent = startAgent(server, { handlers: ["shell"] });
  scratch = mkdtempSync(path.join(tmpdir(), "stackl-shell-"));
  await server.next("hello");
});

after(async () => {
  await agent.close();
  await server.close();
  rmSync(scratch, { recursive: true, force: true });
});

function assertContiguous(jobId: string): void {
  const seqs = (server.logs.get(jobId) ?? []).map((c) => Number(c.seq));
  assert.ok(seqs.length > 0, "no log chunks");
  assert.deepEqual(
    seqs,
    Array.from({ length: seqs.length }, (_, i) => i + 1),
    "log sequence numbers are 1..n without gaps",
  );
  assert.deepEqual(server.gaps, [], "the server saw no gap");
}

describe("shell handler", () => {
  test("argv with shell metacharacters is passed literally, never evaluated", async () => {
    const marks = ["x", "y", "z", "p"].map((m) => path.join(scratch, `pwned-${m}`));
    const argv = [
      NODE,
      "-e",
      "console.log(JSON.stringify({argv: process.argv.slice(1), param: process.env.STACKL_PARAM_EVIL}))",
      `$(touch ${marks[0]})`,
      ";",
      `\`touch ${marks[1]}\``,
      `&& touch ${marks[2]}`,
      "| cat",
      "'quoted' \"double\" $HOME *",
    ];
    server.offer("meta", shellSpec(argv, { parameters: { evil: `$(touch ${marks[3]})` } }));
    const result = await server.result("meta");
    assert.equal(result.outcome, JobOutcome.SUCCEEDED, result.error);
    const stdout = Buffer.concat(
      (server.logs.get("meta") ?? []).filter((c) => c.stream === LogStream.STDOUT).map((c) => c.data),
    ).toString();
    const printed = JSON.parse(stdout.trim()) as { argv: string[]; param: string };
    assert.deepEqual(printed.argv, argv.slice(3));
    assert.equal(printed.param, `$(touch ${marks[3]})`);
    for (const m of marks) assert.equal(existsSync(m), false, `${m} was created: something evaluated the input`);
    assertContiguous("meta");
  });

  test("parameters as env and file, working dir, outputs file mapped through the outputs spec", async () => {
    const script = [
      "const fs = require('node:fs');",
      "const params = JSON.parse(fs.readFileSync(process.env.STACKL_PARAMS_FILE, 'utf8'));",
      "for (let i = 1; i <= 50; i++) console.log('line ' + i);",
      "fs.writeFileSync(process.env.STACKL_OUTPUTS_FILE, JSON.stringify({",
      "  server: { ip: '10.1.2.3', names: [process.env.STACKL_PARAM_DB_HOST] },",
      "  replicas: Number(process.env.STACKL_PARAM_REPLICAS), fromFile: params.tags, cwd: process.cwd(),",
      "  stack: process.env.STACKL_STACK_INSTANCE, extra: process.env.EXTRA }));",
    ].join("\n");
    server.offer(
      "outputs",
      shellSpec([NODE, "-e", script], {
        parameters: { dbHost: "db.local", replicas: 3, tags: ["a", "b"] },
        outputsSpec: {
          ip: "server.ip",
          host: "server.names.0",
          replicas: "replicas",
          tags: "fromFile",
          cwd: "cwd",
          stack: "stack",
          extra: "extra",
          none: "no.such",
        },
        stackInstance: "si-1",
        invocation: { tool: "shell", command: [NODE, "-e", script], workingDir: scratch, env: { EXTRA: "literal" } },
      }),
    );
    const result = await server.result("outputs");
    assert.equal(result.outcome, JobOutcome.SUCCEEDED, result.error);
    assert.deepEqual(result.outputs, {
      ip: "10.1.2.3",
      host: "db.local",
      replicas: 3,
      tags: ["a", "b"],
      cwd: scratch,
      stack: "si-1",
      extra: "literal",
      none: null,
    });
    const text = server.logText("outputs");
    for (let i = 1; i <= 50; i++) assert.ok(text.includes(`line ${i}\n`), `line ${i} missing`);
    assertContiguous("outputs");
    assert.equal(result.lastLogSeq, BigInt(server.logs.get("outputs")!.length));
  });

  test("a non-zero exit fails the job with its exit code", async () => {
    server.offer("exit3", shellSpec(["sh", "-c", "echo bye >&2; exit 3"]));
    const result = await server.result("exit3");
    assert.equal(result.outcome, JobOutcome.FAILED);
    assert.equal(result.exitCode, 3);
    assert.match(result.error, /exited with code 3/);
    assert.ok(
      server.logs
        .get("exit3")!
        .some((c) => c.stream === LogStream.STDERR && Buffer.from(c.data).toString().includes("bye")),
    );
  });

  test("a missing binary fails clearly", async () => {
    server.offer("nobin", shellSpec(["/definitely/not/here"]));
    const result = await server.result("nobin");
    assert.equal(result.outcome, JobOutcome.FAILED);
    assert.match(result.error, /cannot start \/definitely\/not\/here: ENOENT/);
  });

  for (const variant of [
    { name: "SIGTERM", script: "echo pgid=$$; sleep 1000 & sleep 1000 & (sleep 1000; true) & wait", grace: 10_000 },
    { name: "SIGKILL after grace", script: "trap '' TERM; echo pgid=$$; sleep 1000 & sleep 1000 & wait", grace: 300 },
  ]) {
    test(`cancel kills the whole process tree (${variant.name})`, async () => {
      const id = `cancel-${variant.grace}`;
      server.offer(id, shellSpec(["sh", "-c", variant.script]));
      let pgid = 0;
      await server.waitFor(
        () => {
          const m = /pgid=(\d+)/.exec(server.logText(id));
          if (m) pgid = Number(m[1]);
          return pgid > 0 && processGroup(pgid).length >= 3;
        },
        10_000,
        "the process tree to start",
      );
      const started = Date.now();
      server.cancel(id, 1n, variant.grace, "user asked");
      const result = await server.result(id);
      assert.equal(result.outcome, JobOutcome.CANCELLED);
      assert.match(result.error, /cancelled: user asked/);
      assert.deepEqual(processGroup(pgid), [], `processes of group ${pgid} survived the cancel`);
      if (variant.grace < 1_000)
        assert.ok(Date.now() - started >= variant.grace, "SIGKILL came before the grace ended");
      assert.match(server.logText(id), /cancel requested \(user asked\)/);
      assertContiguous(id);
    });
  }

  test("leftover background processes are stopped when the main process exits", async () => {
    server.offer("leftover", shellSpec(["sh", "-c", "echo pgid=$$; sleep 1000 & echo started"]));
    const result = await server.result("leftover");
    assert.equal(result.outcome, JobOutcome.SUCCEEDED, result.error);
    const pgid = Number(/pgid=(\d+)/.exec(server.logText("leftover"))![1]);
    assert.deepEqual(processGroup(pgid), []);
  });

  test("timeout → TIMED_OUT and the process is gone", async () => {
    server.offer(
      "slow",
      shellSpec(["sh", "-c", "echo pgid=$$; sleep 1000"], { timeout: { seconds: 0n, nanos: 300_000_000 } }),
    );
    const result = await server.result("slow");
    assert.equal(result.outcome, JobOutcome.TIMED_OUT);
    assert.match(result.error, /timed out after 300 ms/);
    const pgid = Number(/pgid=(\d+)/.exec(server.logText("slow"))![1]);
    assert.deepEqual(processGroup(pgid), []);
  });

  test("a secret passed by reference never appears in any log chunk (plain, base64, JSON, split)", async () => {
    const secret = 'p@ss"w\\rd-Sup3rS3cret-ü';
    process.env.STACKL_TEST_SECRET = secret;
    const script = [
      "const s = process.env.STACKL_SECRET_DB_PASSWORD;",
      "const write = (t) => new Promise((r) => process.stdout.write(t, r));",
      "(async () => {",
      "  await write('plain: ' + s + '\\n');",
      "  await write('base64: ' + Buffer.from(s).toString('base64') + '\\n');",
      "  await write('base64url: ' + Buffer.from(s).toString('base64url') + '\\n');",
      "  await write('embedded: ' + Buffer.from('user:' + s).toString('base64') + '\\n');",
      "  await write('json: ' + JSON.stringify({ password: s }) + '\\n');",
      "  const half = Math.floor(s.length / 2);",
      "  await write('split: ' + s.slice(0, half));",
      "  await new Promise((r) => setTimeout(r, 150));",
      "  await write(s.slice(half) + '\\n');",
      "  console.error('stderr: ' + s);",
      "  process.exit(1);",
      "})();",
    ].join("\n");
    server.offer("secret", shellSpec([NODE, "-e", script], { secrets: { db_password: "env:STACKL_TEST_SECRET" } }));
    const result = await server.result("secret");
    assert.equal(result.outcome, JobOutcome.FAILED);
    const b64 = Buffer.from(secret).toString("base64");
    const forms = [secret, b64, Buffer.from(secret).toString("base64url"), JSON.stringify(secret).slice(1, -1)];
    const chunks = server.logs.get("secret") ?? [];
    for (const chunk of chunks) {
      const text = Buffer.from(chunk.data).toString();
      for (const f of forms) assert.ok(!text.includes(f), `chunk ${chunk.seq} leaks ${f}`);
    }
    const all = server.logText("secret");
    for (const f of forms) assert.ok(!all.includes(f), `the log leaks ${f}`);
    assert.ok(
      !Buffer.from(all.match(/embedded: (\S+)/)![1]!.replace("***", ""), "base64")
        .toString()
        .includes(secret),
    );
    for (const label of ["plain", "base64", "base64url", "json", "split", "stderr"]) {
      assert.match(all, new RegExp(`${label}: .*\\*\\*\\*`), `${label} not masked`);
    }
    assert.ok(!result.error.includes(secret));
    for (const line of agent.logLines)
      for (const f of forms) assert.ok(!line.includes(f), "the agent's own log leaks the secret");
    assertContiguous("secret");
    delete process.env.STACKL_TEST_SECRET;
  });

  test("the job token and server URL reach the process; the token is masked in the log", async () => {
    server.offer(
      "token",
      shellSpec([
        NODE,
        "-e",
        "console.log('token=' + process.env.STACKL_JOB_TOKEN); require('fs').writeFileSync(process.env.STACKL_OUTPUTS_FILE, JSON.stringify({ token: process.env.STACKL_JOB_TOKEN, server: process.env.STACKL_SERVER_URL }))",
      ]),
    );
    const result = await server.result("token");
    assert.equal(result.outcome, JobOutcome.SUCCEEDED, result.error);
    assert.deepEqual(result.outputs, { token: "job-token-token", server: server.url });
    assert.match(server.logText("token"), /token=\*\*\*/);
    assert.ok(!server.logText("token").includes("job-token-token"));
  });

  test("an unresolvable secret fails the job naming the secret", async () => {
    server.offer("nosecret", shellSpec(["true"], { secrets: { api_key: "env:STACKL_TEST_UNSET_VAR" } }));
    const result = await server.result("nosecret");
    assert.equal(result.outcome, JobOutcome.FAILED);
    assert.match(result.error, /secret "api_key" \(env:STACKL_TEST_UNSET_VAR\): environment variable .* is not set/);
  });

  test("a secret from a file reaches the process as STACKL_SECRET_*", async () => {
    const file = path.join(scratch, "token");
    writeFileSync(file, "file-secret-123456\n");
    server.offer(
      "filesecret",
      shellSpec(
        [
          NODE,
          "-e",
          "require('fs').writeFileSync(process.env.STACKL_OUTPUTS_FILE, JSON.stringify({len: process.env.STACKL_SECRET_TOKEN.length}))",
        ],
        {
          secrets: { token: `file:${file}` },
        },
      ),
    );
    const result = await server.result("filesecret");
    assert.equal(result.outcome, JobOutcome.SUCCEEDED, result.error);
    assert.deepEqual(result.outputs, { len: "file-secret-123456".length });
  });
});
