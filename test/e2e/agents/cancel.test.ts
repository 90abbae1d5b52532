// CancelJob end to end: a job running a process tree (children, a grandchild, one process ignoring SIGTERM) on a real
// agent is cancelled through the API of the OTHER replica; every process is gone and the job ends `cancelled`,
// confirmed by the agent. A pending job is cancelled at once; a job whose agent is gone ends cancelled after its
// lost_after.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { JobState } from "../../../gen/stackl/v1/jobs_pb.js";
import { processGroup } from "../../integration/agent/proc.js";
import { eventually } from "../../support/stackl-process.js";
import { processAlive } from "../../support/tools.js";
import { Cluster, type Replica, sh } from "./cluster.js";

let c: Cluster;
let a: Replica;
let b: Replica;

before(async () => {
  c = await Cluster.start();
  [a, b] = await Promise.all([c.serve("cancel-a"), c.serve("cancel-b")]);
});

after(async () => {
  await c?.close();
});

describe("job cancellation", { timeout: 300_000 }, () => {
  test("cancel a job running a process tree: every process is gone and the job is cancelled", async () => {
    const agent = c.agent(a, { name: "cancel-1", pool: "cancel", token: await c.token(a, "cancel") });
    await c.connected("cancel-1");
    const script = [
      "sleep 300 &",
      "(sleep 300 & wait) &",
      "(trap '' TERM; while :; do sleep 1; done) &",
      'echo "pids $$ $(jobs -p | tr "\\n" " ")"',
      "wait",
    ].join("\n");
    const { job } = await b.jobs.runJob({ target: "cancel-1", spec: sh(script) });
    const id = job?.id ?? "";
    const pids = await eventually("the job printed its pids", async () => {
      const text = (await c.storedLogs(id)).map((l) => l.text).join("");
      const m = /pids ([\d ]+)/.exec(text);
      return m ? m[1]!.trim().split(/\s+/).map(Number) : undefined;
    });
    const leader = pids[0]!;
    const group = processGroup(leader);
    assert.ok(group.length >= 5, `a process tree in one group: ${group.join(", ")}`);
    const res = await b.jobs.cancelJob({ id, grace: durationFromMs(1_000), reason: "test cancels it" });
    assert.notEqual(res.job?.cancelRequestedTime, undefined);
    const done = await c.finished(id, 30_000);
    assert.equal(done.state, "cancelled", JSON.stringify(done.error));
    assert.equal(done.error?.code, "cancelled");
    assert.equal(done.error?.message, "test cancels it");
    assert.deepEqual(processGroup(leader), [], "the whole process group is gone");
    for (const pid of group) assert.equal(processAlive(pid), false, `process ${pid} is gone`);
    const text = (await c.storedLogs(id)).map((l) => l.text).join("");
    assert.match(text, /cancel requested \(test cancels it\): SIGTERM .* SIGKILL after 1000 ms/);
    assert.ok(agent.lines().some((l) => l.msg === "cancelling job" && l.job === id));
    const { job: final } = await a.jobs.getJob({ id });
    assert.equal(final?.state, JobState.CANCELLED);
  });

  test("a pending job is cancelled at once; cancelling a finished job changes nothing", async () => {
    const { job } = await a.jobs.runJob({ target: "nobody-serves-this", spec: sh("echo never") });
    const res = await b.jobs.cancelJob({ id: job?.id ?? "" });
    assert.equal(res.job?.state, JobState.CANCELLED);
    const again = await a.jobs.cancelJob({ id: job?.id ?? "", reason: "twice" });
    assert.equal(again.job?.state, JobState.CANCELLED);
    assert.equal(again.job?.error?.message, res.job?.error?.message, "idempotent: the first reason stands");
    assert.match(again.job?.error?.message ?? "", /^cancelled by /);
    const retried = await a.jobs.retryJob({ id: job?.id ?? "" });
    assert.equal(retried.job?.state, JobState.PENDING, "RetryJob queues a cancelled job again");
    await a.jobs.cancelJob({ id: job?.id ?? "" });
  });

  test("the agent is gone: the cancelled job ends cancelled after its lost_after", async () => {
    const agent = c.agent(a, { name: "cancel-gone", pool: "cancel-gone", token: await c.token(a, "cancel-gone") });
    await c.connected("cancel-gone");
    const { job } = await a.jobs.runJob({
      target: "cancel-gone",
      spec: sh('echo "pid $$"; exec sleep 300', { lostAfter: durationFromMs(2_000) }),
    });
    const id = job?.id ?? "";
    const pid = await eventually("the job printed its pid", async () => {
      const m = /pid (\d+)/.exec((await c.storedLogs(id)).map((l) => l.text).join(""));
      return m ? Number(m[1]) : undefined;
    });
    agent.signal("SIGKILL");
    await agent.exited;
    // A SIGKILLed agent cannot stop its job's process group; this test does (so nothing outlives it).
    process.kill(-pid, "SIGKILL");
    await a.jobs.cancelJob({ id, reason: "agent died" });
    const done = await c.finished(id, 30_000);
    assert.equal(done.state, "cancelled");
    assert.match(done.error?.message ?? "", /agent died \(the agent never confirmed/);
    assert.equal(done.attempt, 1, "not re-dispatched");
  });
});
