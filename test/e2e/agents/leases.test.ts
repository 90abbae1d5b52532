// Leases with fencing, end to end (reliability notes 2.2 (c)): a real agent process is frozen with SIGSTOP (its job's
// processes keep running) and thawed with SIGCONT.
// - Frozen for less than the job's lost_after: the server marks the agent disconnected, the job keeps its lease; on
//   reconnect the job resumes at the same epoch and its log has no gap.
// - Frozen for longer: the job is re-dispatched exactly once (epoch + 1) to another agent; the old agent's late
//   result is refused (it is told not to resume); a second loss fails the job with `agent_lost`.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { eventually } from "../../support/stackl-process.js";
import { Cluster, type Replica, sh } from "./cluster.js";

let c: Cluster;
let a: Replica;

before(async () => {
  c = await Cluster.start();
  a = await c.serve("lease-a");
});

after(async () => {
  await c?.close();
});

async function agentState(name: string): Promise<string | undefined> {
  const r = await c.db.query<{ state: string }>("SELECT state FROM agents WHERE name = $1", [name]);
  return r.rows[0]?.state;
}

describe("job leases across agent disconnects", { timeout: 300_000 }, () => {
  test("cut off for less than lost_after: same job, same epoch, no gap in the log", async () => {
    const agent = c.agent(a, { name: "resume-1", pool: "resume", token: await c.token(a, "resume"), capacity: 1 });
    await c.connected("resume-1");
    const { job } = await a.jobs.runJob({
      target: "resume",
      spec: sh("i=1; while [ $i -le 40 ]; do echo line $i; i=$((i+1)); sleep 0.1; done", {
        lostAfter: durationFromMs(60_000),
      }),
    });
    const id = job?.id ?? "";
    await c.jobUntil(id, "running with output", (j) => j.state === "running" && j.lastLogSeq >= 4);
    agent.signal("SIGSTOP");
    try {
      await eventually(
        "the server marks the agent disconnected",
        async () => (await agentState("resume-1")) === "disconnected",
        {
          timeoutMs: 15_000,
        },
      );
      const leased = await c.job(id);
      assert.equal(leased.state, "running", "the job keeps running on its lease");
      assert.ok(leased.leaseUntil !== null && leased.leaseUntil.getTime() > Date.now() + 30_000, "lease of ~60 s");
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      agent.signal("SIGCONT");
    }
    const done = await c.finished(id);
    assert.equal(done.state, "succeeded", JSON.stringify(done.error));
    assert.equal(done.epoch, 1, "same epoch");
    assert.equal(done.attempt, 1, "never re-dispatched");
    assert.equal(done.redispatched, false);
    assert.equal(done.agent, "resume-1");
    const logs = await c.storedLogs(id);
    assert.deepEqual(
      logs.map((l) => l.seq),
      Array.from({ length: done.lastLogSeq }, (_, i) => i + 1),
      "contiguous sequence",
    );
    assert.ok(logs.every((l) => l.epoch === 1));
    const lines = logs
      .filter((l) => l.stream === 1)
      .map((l) => l.text)
      .join("")
      .trim()
      .split("\n");
    assert.deepEqual(
      lines,
      Array.from({ length: 40 }, (_, i) => `line ${i + 1}`),
      "every line once, in order",
    );
    assert.ok(
      agent.lines().some((l) => l.msg === "resuming job" && l.job === id && l.epoch === 1),
      "the agent resumed it after reconnecting",
    );
    assert.match(a.proc.logs(), new RegExp(`"resumed":\\["${id}"\\]`));
  });

  test("cut off for longer: re-dispatched exactly once with epoch + 1; the old agent's result is refused", async () => {
    const token1 = await c.token(a, "redispatch");
    const token2 = await c.token(a, "redispatch");
    const x = c.agent(a, { name: "redispatch-x", pool: "redispatch", token: token1, capacity: 1 });
    const y = c.agent(a, { name: "redispatch-y", pool: "redispatch", token: token2, capacity: 1 });
    await Promise.all([c.connected("redispatch-x"), c.connected("redispatch-y")]);
    const { job } = await a.jobs.runJob({
      target: "redispatch",
      spec: sh('echo "start on $STACKL_JOB_EPOCH"; sleep 2.5; echo "end on $STACKL_JOB_EPOCH"', {
        lostAfter: durationFromMs(2_000),
      }),
    });
    const id = job?.id ?? "";
    const first = await c.jobUntil(id, "running", (j) => j.state === "running" && j.lastLogSeq >= 3);
    const [holder, other] = first.agent === "redispatch-x" ? [x, y] : [y, x];
    holder.signal("SIGSTOP");
    let done: Awaited<ReturnType<Cluster["finished"]>>;
    try {
      done = await c.finished(id, 60_000);
    } finally {
      // The old agent's job process finished while it was frozen: its result is now a late write.
      holder.signal("SIGCONT");
    }
    assert.equal(done.state, "succeeded", JSON.stringify(done.error));
    assert.equal(done.agent, other.name, "the other agent ran the re-dispatch");
    assert.equal(done.epoch, 2, "epoch + 1");
    assert.equal(done.attempt, 2, "dispatched exactly twice");
    assert.equal(done.redispatched, true);
    await eventually(
      "the old agent is told its epoch is stale and drops the job",
      async () => holder.lines().some((l) => l.msg === "dropping job" && l.job === id),
      { timeoutMs: 30_000 },
    );
    const drop = holder.lines().find((l) => l.msg === "dropping job" && l.job === id);
    assert.match(String(drop?.reason), /epoch 2|stale|succeeded/);
    const after = await c.job(id);
    assert.deepEqual(
      [after.state, after.epoch, after.agent],
      ["succeeded", 2, other.name],
      "the late result changed nothing",
    );
    const logs = await c.storedLogs(id);
    assert.deepEqual(
      logs.map((l) => l.seq),
      Array.from({ length: after.lastLogSeq }, (_, i) => i + 1),
    );
    const text = logs.map((l) => l.text).join("");
    assert.match(text, /end on 2/);
    assert.doesNotMatch(text, /end on 1/, "nothing of epoch 1 was stored after the re-dispatch");
    assert.ok(logs.some((l) => l.epoch === 1) && logs.some((l) => l.epoch === 2));
  });

  test("lost a second time: the job fails with agent_lost, no third dispatch", async () => {
    const z = c.agent(a, { name: "twice-z", pool: "twice", token: await c.token(a, "twice"), capacity: 1 });
    await c.connected("twice-z");
    const { job } = await a.jobs.runJob({
      target: "twice",
      spec: sh("echo working; sleep 60", { lostAfter: durationFromMs(2_000) }),
    });
    const id = job?.id ?? "";
    await c.jobUntil(id, "running", (j) => j.state === "running" && j.epoch === 1);
    z.signal("SIGSTOP");
    try {
      await c.jobUntil(id, "re-dispatched", (j) => j.state === "pending" && j.redispatched, 30_000);
    } finally {
      z.signal("SIGCONT");
    }
    // Back, the agent is told to drop epoch 1 and is offered the job again (a claim while it was still killing the
    // old process may be declined first: every claim takes a new epoch, declines do not count as dispatches).
    const again = await c.jobUntil(id, "running again", (j) => j.state === "running" && j.epoch >= 2, 30_000);
    assert.equal(again.attempt, 2);
    z.signal("SIGSTOP");
    let failed: Awaited<ReturnType<Cluster["finished"]>>;
    try {
      failed = await c.finished(id, 30_000);
    } finally {
      z.signal("SIGCONT");
    }
    assert.equal(failed.state, "failed");
    assert.equal(failed.error?.code, "agent_lost");
    assert.match(failed.error?.message ?? "", /already been re-dispatched once/);
    assert.equal(failed.attempt, 2, "no third dispatch");
    assert.equal(failed.epoch, again.epoch);
    // When it comes back the agent is told to drop the job. (Known agent issue: after a long SIGSTOP, connect-node's
    // keepalive timer may ping a destroyed HTTP/2 session and crash the agent process; then there is nobody to tell.)
    const outcome = await Promise.race([
      eventually(
        "the agent drops the job when it comes back",
        async () => z.lines().some((l) => l.msg === "dropping job" && l.job === id && l.epoch === again.epoch),
        { timeoutMs: 30_000 },
      ).then(() => "dropped"),
      z.exited.then(() => "agent exited"),
    ]);
    const final = await c.job(id);
    assert.deepEqual([final.state, final.attempt], ["failed", 2], `after the agent came back (${outcome})`);
  });
});
