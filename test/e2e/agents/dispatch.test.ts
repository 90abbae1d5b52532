// Job dispatch end to end across two `stackl serve` replicas sharing PostgreSQL and NATS, with real agents: a job
// created on replica B reaches an agent whose stream is held by replica A (and the other way round); pool routing;
// capacity is never exceeded; logs are persisted in sequence, replayed from an offset and followed live; a secret
// passed by reference never appears in stored or streamed logs.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AgentState } from "../../../gen/stackl/v1/agents_pb.js";
import { JobState, LogStream } from "../../../gen/stackl/v1/jobs_pb.js";
import { eventually } from "../../support/stackl-process.js";
import { type AgentProc, Cluster, type Replica, sh } from "./cluster.js";

let c: Cluster;
let a: Replica;
let b: Replica;
let onA: AgentProc;
let onB: AgentProc;

const SECRET = "s3cr3t-Value-9f8e7d6c";

before(async () => {
  c = await Cluster.start();
  [a, b] = await Promise.all([c.serve("replica-a"), c.serve("replica-b")]);
  onA = c.agent(a, {
    name: "agent-a",
    pool: "linux",
    token: await c.token(a, "linux"),
    capacity: 2,
    env: { STACKL_E2E_SECRET: SECRET },
  });
  onB = c.agent(b, { name: "agent-b", pool: "linux", token: await c.token(b, "linux"), capacity: 2 });
  await Promise.all([c.connected("agent-a"), c.connected("agent-b")]);
});

after(async () => {
  await c?.close();
});

describe("job dispatch across replicas", { timeout: 300_000 }, () => {
  test("each agent's stream is held by its own replica", async () => {
    const ga = await b.agents.getAgent({ name: "agent-a" });
    const gb = await a.agents.getAgent({ name: "agent-b" });
    assert.equal(ga.agent?.replica, "replica-a");
    assert.equal(gb.agent?.replica, "replica-b");
    assert.deepEqual(ga.agent?.handlers, ["mock", "shell"]);
    assert.equal(ga.agent?.capacity, 2);
  });

  test("a job created on replica B runs on the agent held by replica A, and the reverse", async () => {
    const t0 = Date.now();
    const viaB = await b.jobs.runJob({
      target: "agent-a",
      spec: sh("echo ran on $STACKL_JOB_ID"),
      wait: { seconds: 30n },
    });
    const latency = Date.now() - t0;
    assert.equal(viaB.job?.state, JobState.SUCCEEDED, JSON.stringify(viaB.job?.error));
    assert.equal(viaB.job?.agent, "agent-a");
    assert.equal(viaB.job?.epoch, 1n);
    assert.ok(latency < 10_000, `doorbell, not polling: ${latency} ms`);
    const viaA = await a.jobs.runJob({ target: "agent-b", spec: sh("echo hi"), wait: { seconds: 30n } });
    assert.equal(viaA.job?.state, JobState.SUCCEEDED);
    assert.equal(viaA.job?.agent, "agent-b");
    const logs = await c.storedLogs(viaB.job?.id ?? "");
    assert.ok(logs.some((l) => l.text === `ran on ${viaB.job?.id}\n` && l.stream === LogStream.STDOUT));
  });

  test("pool jobs spread over both agents and never exceed an agent's capacity", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const via = i % 2 === 0 ? a : b;
      const { job } = await via.jobs.runJob({ target: "linux", spec: sh("sleep 0.6; echo done") });
      ids.push(job?.id ?? "");
    }
    const jobs = await Promise.all(ids.map((id) => c.finished(id)));
    assert.ok(
      jobs.every((j) => j.state === "succeeded"),
      JSON.stringify(jobs.map((j) => [j.state, j.error])),
    );
    const byAgent = new Map<string, typeof jobs>();
    for (const j of jobs) byAgent.set(j.agent ?? "", [...(byAgent.get(j.agent ?? "") ?? []), j]);
    assert.deepEqual([...byAgent.keys()].sort(), ["agent-a", "agent-b"], "both agents took jobs");
    for (const [agent, list] of byAgent) {
      // [offered, finished] intervals of one agent: at no instant more than its capacity (2) overlap.
      const events = list.flatMap((j) => [
        { t: (j.offeredAt as Date).getTime(), d: 1 },
        { t: (j.finishedAt as Date).getTime(), d: -1 },
      ]);
      events.sort((x, y) => x.t - y.t || x.d - y.d);
      let now = 0;
      let max = 0;
      for (const e of events) {
        now += e.d;
        max = Math.max(max, now);
      }
      assert.ok(max <= 2, `${agent} held ${max} jobs at once (capacity 2)`);
      assert.ok(
        list.every((j) => j.epoch === 1 && j.attempt === 1),
        "no job was dispatched twice",
      );
    }
  });

  test("logs: contiguous, replayed from an offset, followed live until the job ends", async () => {
    const { job } = await a.jobs.runJob({
      target: "agent-b",
      spec: sh("for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done; echo oops >&2"),
    });
    const id = job?.id ?? "";
    await c.jobUntil(id, "has logs", (j) => j.lastLogSeq >= 1);
    // Follow from the start on replica A (the agent is on B: logs reach A through PostgreSQL NOTIFY).
    const followed: { seq: bigint; text: string }[] = [];
    for await (const { chunk } of a.jobs.streamJobLogs({ id, afterSeq: 0n, follow: true })) {
      if (chunk) followed.push({ seq: chunk.seq, text: Buffer.from(chunk.data).toString() });
    }
    const done = await c.job(id);
    assert.equal(done.state, "succeeded");
    assert.deepEqual(
      followed.map((f) => Number(f.seq)),
      Array.from({ length: done.lastLogSeq }, (_, i) => i + 1),
      "every chunk once, in order, no gap",
    );
    assert.match(followed.map((f) => f.text).join(""), /line 1\n[\s\S]*line 5\n[\s\S]*oops\n/);
    const replay: bigint[] = [];
    for await (const { chunk } of b.jobs.streamJobLogs({ id, afterSeq: 3n })) if (chunk) replay.push(chunk.seq);
    assert.deepEqual(
      replay.map(Number),
      Array.from({ length: done.lastLogSeq - 3 }, (_, i) => i + 4),
    );
    const stored = await c.storedLogs(id);
    assert.deepEqual(
      stored.map((s) => s.seq),
      followed.map((f) => Number(f.seq)),
    );
  });

  test("a secret passed by reference never appears in stored or streamed logs", async () => {
    const b64 = Buffer.from(SECRET).toString("base64");
    const { job } = await b.jobs.runJob({
      target: "agent-a",
      spec: sh(
        'echo "plain: $STACKL_SECRET_API_TOKEN"; printf %s "$STACKL_SECRET_API_TOKEN" | base64; ' +
          // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax, not a template
          'echo "{\\"json\\": \\"$STACKL_SECRET_API_TOKEN\\"}" >&2; echo "len=${#STACKL_SECRET_API_TOKEN}"',
        { secrets: { api_token: "env:STACKL_E2E_SECRET" } },
      ),
      wait: { seconds: 30n },
    });
    assert.equal(job?.state, JobState.SUCCEEDED, JSON.stringify(job?.error));
    const id = job?.id ?? "";
    assert.deepEqual(job?.spec?.secrets, { api_token: "env:STACKL_E2E_SECRET" }, "only the reference is kept");
    const stored = (await c.storedLogs(id)).map((l) => l.text).join("");
    let streamed = "";
    for await (const { chunk } of a.jobs.streamJobLogs({ id }))
      if (chunk) streamed += Buffer.from(chunk.data).toString();
    assert.equal(streamed, stored);
    assert.match(stored, /plain: \*\*\*/);
    assert.match(stored, new RegExp(`len=${SECRET.length}`), "the job saw the real value");
    for (const form of [SECRET, b64, b64.slice(0, 16)]) {
      assert.ok(!stored.includes(form), `stored logs contain ${form}`);
    }
    const raw = await c.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM job_logs WHERE position(convert_to($1, 'UTF8') IN data) > 0
          OR position(convert_to($2, 'UTF8') IN data) > 0`,
      [SECRET, b64],
    );
    assert.equal(raw.rows[0]?.n, 0);
    const specs = await c.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM jobs WHERE spec::text LIKE '%' || $1 || '%'",
      [SECRET],
    );
    assert.equal(specs.rows[0]?.n, 0, "no job spec holds the value");
  });

  test("ListAgents shows state, capacity, running jobs and the last heartbeat", async () => {
    const { job } = await a.jobs.runJob({ target: "agent-b", spec: sh("sleep 2") });
    await c.jobUntil(job?.id ?? "", "running", (j) => j.state === "running");
    const { agents } = await a.agents.listAgents({ pool: "linux" });
    const agentB = agents.find((x) => x.name === "agent-b");
    assert.deepEqual(agentB?.runningJobIds, [job?.id]);
    assert.ok(agentB?.lastHeartbeatTime !== undefined);
    await eventually("the heartbeat is recent", async () => {
      const { agent } = await b.agents.getAgent({ name: "agent-b" });
      const t = Number(agent?.lastHeartbeatTime?.seconds ?? 0n) * 1000;
      return Date.now() - t < 2_000;
    });
    await c.finished(job?.id ?? "");
  });

  test("DrainAgent stops new offers; the agent finishes its job and disconnects", async () => {
    const { job } = await a.jobs.runJob({ target: "agent-b", spec: sh("sleep 1; echo finished") });
    await c.jobUntil(job?.id ?? "", "running", (j) => j.state === "running");
    await a.agents.drainAgent({ name: "agent-b", reason: "maintenance" });
    const { job: later } = await a.jobs.runJob({ target: "agent-b", spec: sh("echo never") });
    const done = await c.finished(job?.id ?? "");
    assert.equal(done.state, "succeeded", "the running job finished");
    assert.equal(await onB.exited, 0, "the agent exited after draining");
    const pending = await c.job(later?.id ?? "");
    assert.equal(pending.state, "pending", "no offer after the drain");
    await eventually("disconnected, its finished drain cleared", async () => {
      const { agent } = await a.agents.getAgent({ name: "agent-b" });
      return agent?.state === AgentState.DISCONNECTED;
    });
    await a.jobs.cancelJob({ id: later?.id ?? "" });
    void onA;
  });
});
