// The agent session against the fake server: enrollment, reconnect and resume with contiguous logs, results
// delivered after a reconnect, resume decisions, rejections, declines, drain, authentication failures, bounded
// log buffering with backpressure, and recovery from the job journal after an agent restart.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, test } from "node:test";
import { JobOutcome } from "../../../gen/stackl/v1/agents_pb.js";
import { LogStream } from "../../../gen/stackl/v1/jobs_pb.js";
import { FakeAgentServer, type FakeAgentServerOptions } from "../../support/fake-agent-server.js";
import { mockSpec, shellSpec, startAgent, type TestAgent, type TestAgentOptions } from "./harness.js";
import { processGroup } from "./proc.js";

const NODE = process.execPath;
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function setup(
  serverOptions: FakeAgentServerOptions = {},
  agentOptions: TestAgentOptions = {},
): Promise<{ server: FakeAgentServer; agent: TestAgent; scratch: string }> {
  const server = await FakeAgentServer.start(serverOptions);
  const agent = startAgent(server, agentOptions);
  const scratch = mkdtempSync(path.join(tmpdir(), "stackl-session-"));
  cleanups.push(
    () => server.close(),
    () => agent.close(),
    () => rmSync(scratch, { recursive: true, force: true }),
  );
  await server.next("hello");
  await server.waitFor(() => agent.session.state === "connected", 5_000, "connected");
  return { server, agent, scratch };
}

function seqs(server: FakeAgentServer, jobId: string): number[] {
  return (server.logs.get(jobId) ?? []).map((c) => Number(c.seq));
}

function assertContiguous(server: FakeAgentServer, jobId: string): void {
  const s = seqs(server, jobId);
  assert.deepEqual(
    s,
    Array.from({ length: s.length }, (_, i) => i + 1),
    "log seqs are 1..n",
  );
  assert.deepEqual(server.gaps, []);
}

/** A node script printing numbered lines until `release` exists. */
function tickerScript(release: string): string[] {
  return [
    NODE,
    "-e",
    `const fs = require('node:fs'); let i = 0;
     const t = setInterval(() => {
       console.log('tick ' + (++i));
       if (fs.existsSync(${JSON.stringify(release)})) { clearInterval(t); console.log('released after ' + i); }
     }, 10);`,
  ];
}

describe("agent session", () => {
  test("enrolls with the token, stores the credential 0600 and presents it on the next connection", async () => {
    const { server, agent } = await setup();
    assert.equal(server.hellos[0]!.credential.case, "enrollmentToken");
    assert.equal(server.hellos[0]!.name, "test-agent");
    assert.deepEqual(server.hellos[0]!.handlers, ["mock", "shell"]);
    assert.equal(server.hellos[0]!.maxConcurrentJobs, 4);
    assert.deepEqual(server.hellos[0]!.labels, { zone: "test" });
    const file = path.join(agent.stateDir, "credential.json");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(file, "utf8")).agent_credential, server.credential);
    server.dropConnections();
    const hello = await server.next("hello");
    assert.deepEqual(hello.credential, { case: "agentCredential", value: server.credential });
    // heartbeats flow on the new stream
    await server.next("heartbeat");
  });

  test("state machine: enrolling → connected → connecting (cut) → connected → draining → stopped", async () => {
    const server = await FakeAgentServer.start();
    const agent = startAgent(server);
    cleanups.push(
      () => server.close(),
      () => agent.close(),
    );
    const states: string[] = [];
    agent.session.on("state", (to: string) => states.push(to));
    await server.next("hello");
    await server.waitFor(() => agent.session.state === "connected", 5_000, "connected");
    server.dropConnections();
    await server.next("hello");
    await server.waitFor(() => states.filter((s) => s === "connected").length === 2, 5_000, "reconnected");
    await agent.session.drain("test");
    assert.deepEqual(states, ["enrolling", "connected", "connecting", "connected", "draining", "stopped"]);
    assert.ok(
      agent.logLines.some((l) => /"from":"connected","to":"connecting"/.test(l)),
      "transitions are logged",
    );
  });

  test("connection cut mid-job: reconnect, job reported in flight, logs resume with no gap, result delivered", async () => {
    const { server, agent, scratch } = await setup();
    const release = path.join(scratch, "release");
    server.offer("resume-1", shellSpec(tickerScript(release)));
    await server.waitFor(() => seqs(server, "resume-1").length >= 5, 10_000, "5 chunks");
    const heartbeat = await server.next("heartbeat", (h) => h.jobs.some((j) => j.jobId === "resume-1"));
    assert.equal(heartbeat.jobs[0]!.epoch, 1n);
    const streamsBefore = server.streamCount;

    server.dropConnections();
    const hello = await server.next("hello");
    assert.ok(server.streamCount > streamsBefore);
    const inFlight = hello.jobsInFlight.find((j) => j.jobId === "resume-1");
    assert.ok(inFlight, "the job is reported in Hello");
    assert.equal(inFlight.epoch, 1n);
    assert.equal(inFlight.finished, false);
    assert.ok(inFlight.nextLogSeq >= 2n);
    const before = seqs(server, "resume-1").length;
    await server.waitFor(() => seqs(server, "resume-1").length > before + 3, 10_000, "logs after the reconnect");
    writeFileSync(release, "");
    const result = await server.result("resume-1");
    assert.equal(result.outcome, JobOutcome.SUCCEEDED, result.error);
    assertContiguous(server, "resume-1");
    assert.equal(result.lastLogSeq, BigInt(seqs(server, "resume-1").length));
    const text = server.logText("resume-1");
    const last = Number(/released after (\d+)/.exec(text)![1]);
    const ticks = [...text.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(
      ticks,
      Array.from({ length: last }, (_, i) => i + 1),
      "every line exactly once, in order",
    );
    await server.waitFor(() => agent.session.jobIds.length === 0, 5_000, "the job to be forgotten after confirmation");
  });

  test("a job that finishes while disconnected is reported finished in Hello and its result delivered", async () => {
    const { server, agent } = await setup({}, { backoff: { baseMs: 1_500, capMs: 1_500, jitter: 0 } });
    server.offer("offline-1", mockSpec({ log: "a\nb", sleep_ms: 100, outputs: { x: 1 } }));
    await server.next("jobAccepted");
    server.dropConnections();
    await server.waitFor(() => agent.session.jobIds.length === 1 && agent.session.runningCount === 0, 5_000, "finish");
    const hello = await server.next("hello");
    assert.deepEqual(
      hello.jobsInFlight.map((j) => ({ id: j.jobId, finished: j.finished })),
      [{ id: "offline-1", finished: true }],
    );
    const result = await server.result("offline-1");
    assert.equal(result.outcome, JobOutcome.SUCCEEDED);
    assert.deepEqual(result.outputs, { x: 1 });
    assertContiguous(server, "offline-1");
    await server.waitFor(() => agent.session.jobIds.length === 0, 5_000, "forgotten");
    assert.deepEqual(readdirSync(path.join(agent.stateDir, "jobs")), [], "journal entry removed");
  });

  test("resume=false kills the job and forgets it without a result", async () => {
    let refuse = false;
    const { server, agent } = await setup({
      resume: (hello) =>
        hello.jobsInFlight.map((j) => ({ jobId: j.jobId, epoch: j.epoch, resume: !refuse, reason: "re-dispatched" })),
    });
    server.offer("drop-1", shellSpec(["sh", "-c", "echo pgid=$$; sleep 1000 & wait"]));
    let pgid = 0;
    await server.waitFor(() => {
      pgid = Number(/pgid=(\d+)/.exec(server.logText("drop-1"))?.[1] ?? 0);
      return pgid > 0 && processGroup(pgid).length >= 2;
    });
    refuse = true;
    server.dropConnections();
    await server.next("hello");
    await server.waitFor(() => agent.session.jobIds.length === 0 && agent.session.runningCount === 0, 15_000, "drop");
    assert.deepEqual(processGroup(pgid), []);
    assert.equal(server.results.has("drop-1"), false);
  });

  test("Rejected for a job stops it", async () => {
    const { server, agent } = await setup();
    server.offer("rej-1", shellSpec(["sh", "-c", "echo pgid=$$; sleep 1000"]));
    let pgid = 0;
    await server.waitFor(() => {
      pgid = Number(/pgid=(\d+)/.exec(server.logText("rej-1"))?.[1] ?? 0);
      return pgid > 0;
    });
    server.send({ msg: { case: "rejected", value: { jobId: "rej-1", epoch: 1n, reason: "stale epoch" } } });
    await server.waitFor(() => agent.session.runningCount === 0, 15_000, "the job to stop");
    assert.deepEqual(processGroup(pgid), []);
    assert.equal(agent.session.jobIds.length, 0);
  });

  test("declines: unknown handler, no capacity, duplicate at another epoch; re-offer at the same epoch is accepted", async () => {
    const { server } = await setup({}, { capacity: 1 });
    server.offer("d-1", { action: "create", invocation: { tool: "packer" } });
    const unknown = await server.next("jobDeclined");
    assert.match(unknown.reason, /handler "packer" is not enabled on this agent \(enabled: mock, shell\)/);
    server.offer("d-2", mockSpec({ sleep_ms: 60_000 }));
    await server.next("jobAccepted", (a) => a.jobId === "d-2");
    server.offer("d-3", mockSpec({}));
    const full = await server.next("jobDeclined");
    assert.equal(full.jobId, "d-3");
    assert.match(full.reason, /no capacity \(1\/1 jobs running\)/);
    server.offer("d-2", mockSpec({}), { epoch: 2n });
    assert.match((await server.next("jobDeclined")).reason, /already held by this agent at epoch 1/);
    server.offer("d-2", mockSpec({}));
    await server.next("jobAccepted", (a) => a.jobId === "d-2");
    server.cancel("d-2");
    assert.equal((await server.result("d-2")).outcome, JobOutcome.CANCELLED);
  });

  test("a cancel for a job the agent does not hold is confirmed as cancelled", async () => {
    const { server } = await setup();
    server.cancel("ghost", 3n);
    const r = await server.result("ghost");
    assert.equal(r.outcome, JobOutcome.CANCELLED);
    assert.equal(r.epoch, 3n);
  });

  test("server Drain: no new jobs, running jobs finish, results delivered, stream closed, session stopped", async () => {
    const { server, agent } = await setup();
    server.offer("drain-1", mockSpec({ sleep_ms: 300, outputs: { ok: true } }));
    await server.next("jobAccepted");
    server.drain("maintenance");
    await server.waitFor(() => agent.session.state === "draining", 5_000, "draining");
    server.offer("drain-2", mockSpec({}));
    assert.match((await server.next("jobDeclined")).reason, /draining/);
    await agent.running;
    assert.equal(agent.session.state, "stopped");
    assert.equal((await server.result("drain-1")).outcome, JobOutcome.SUCCEEDED);
  });

  test("local drain (SIGTERM path) stops jobs still running after the drain timeout", async () => {
    const { server, agent } = await setup({}, { drainTimeoutMs: 200 });
    server.offer("dt-1", mockSpec({ sleep_ms: 60_000 }));
    await server.next("jobAccepted");
    await agent.session.drain("test");
    const r = await server.result("dt-1");
    assert.equal(r.outcome, JobOutcome.CANCELLED);
    assert.match(r.error, /drain timeout/);
    assert.equal(agent.session.state, "stopped");
  });

  test("a revoked agent is refused and does not spin: retries wait about the backoff cap", async () => {
    const { server, agent } = await setup({}, { backoff: { baseMs: 10, capMs: 600 } });
    server.revoke();
    const t0 = Date.now();
    await server.next("hello"); // the immediate reconnect after the stream was cut
    await server.next("hello"); // after the authentication failure
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 300, `retried after ${elapsed} ms, expected >= cap/2 (300 ms)`);
    assert.ok(
      agent.logLines.some((l) => /refused this agent's credential/.test(l) && /"level":50/.test(l)),
      "an error line says the credential was refused",
    );
    assert.ok(server.hellos.length <= 4, `${server.hellos.length} hellos: the agent spins`);
  });

  test("an undelivered result survives an agent restart (job journal)", async () => {
    const server = await FakeAgentServer.start({ ackLogs: false });
    const stateDir = mkdtempSync(path.join(tmpdir(), "stackl-journal-"));
    cleanups.push(
      () => server.close(),
      () => rmSync(stateDir, { recursive: true, force: true }),
    );
    const first = startAgent(server, { stateDir });
    await server.next("hello");
    server.offer("journal-1", mockSpec({ log: "a\nb", outputs: { n: 1 } }));
    await server.waitFor(
      () =>
        first.session.jobIds.length === 1 && first.session.runningCount === 0 && seqs(server, "journal-1").length > 0,
      10_000,
      "the job to finish",
    );
    assert.equal(server.results.has("journal-1"), false, "no result while its logs are unacked");
    await first.close();
    assert.deepEqual(readdirSync(path.join(stateDir, "jobs")), ["journal-1.json"]);
    server.setAckLogs(true);

    const second = startAgent(server, { stateDir });
    cleanups.push(() => second.close());
    const hello = await server.next("hello", (h) => h.jobsInFlight.length > 0);
    assert.deepEqual(
      hello.jobsInFlight.map((j) => ({ id: j.jobId, finished: j.finished })),
      [{ id: "journal-1", finished: true }],
    );
    const r = await server.result("journal-1");
    assert.equal(r.outcome, JobOutcome.SUCCEEDED);
    assert.deepEqual(r.outputs, { n: 1 });
    assertContiguous(server, "journal-1");
    assert.equal(r.lastLogSeq, BigInt(seqs(server, "journal-1").length));
    await server.waitFor(() => second.session.jobIds.length === 0, 5_000, "forgotten");
  });

  test("bounded buffering: without acks the job's output is paused, then everything arrives once acks resume", async () => {
    const cap = 256 * 1024;
    const { server, agent, scratch } = await setup({ ackLogs: false }, { maxUnackedLogBytes: cap });
    const done = path.join(scratch, "done");
    const total = 8 * 1024 * 1024;
    server.offer(
      "bp-1",
      shellSpec(["sh", "-c", `echo pgid=$$; head -c ${total} /dev/zero | tr '\\0' x; echo; touch ${done}`]),
    );
    let pgid = 0;
    await server.waitFor(
      () => {
        pgid ||= Number(/pgid=(\d+)/.exec(server.logText("bp-1"))?.[1] ?? 0);
        return (
          pgid > 0 &&
          processGroup(pgid).some((p) => {
            try {
              return /pipe_write/.test(readFileSync(`/proc/${p}/wchan`, "utf8"));
            } catch {
              return false;
            }
          })
        );
      },
      15_000,
      "the job to block writing its output",
    );
    assert.ok(agent.session.bufferedLogBytes <= cap + 64 * 1024, `buffered ${agent.session.bufferedLogBytes}`);
    assert.equal(existsSync(done), false);
    server.setAckLogs(true);
    const r = await server.result("bp-1", 60_000);
    assert.equal(r.outcome, JobOutcome.SUCCEEDED, r.error);
    assertContiguous(server, "bp-1");
    const stdout = (server.logs.get("bp-1") ?? []).filter((c) => c.stream === LogStream.STDOUT);
    assert.equal(
      Buffer.concat(stdout.map((c) => c.data))
        .toString()
        .split("x").length - 1,
      total,
    );
  });
});
