// The SQL of agents and jobs on PGlite (the same statements run on PostgreSQL in the e2e tests): enrollment rules,
// claims (capacity, session fence, tools), fencing of every agent write by epoch and agent, resume decisions, leases
// and the loss rules (re-dispatch once, then agent_lost).
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { newAgentCredential, newEnrollmentToken, secretHash } from "../../../src/agents/credentials.js";
import { ErrorCode, isStacklError } from "../../../src/errors.js";
import { AgentRepo, newTokenId, type OpenSessionInput } from "../../../src/store/agent-repo.js";
import type { Db } from "../../../src/store/db.js";
import { JobRepo } from "../../../src/store/job-repo.js";
import { openDb } from "../../../src/store/open-db.js";

let db: Db;
let agents: AgentRepo;
let jobs: JobRepo;

before(async () => {
  db = await openDb({ memory: true });
  agents = new AgentRepo(db);
  jobs = new JobRepo(db);
});

after(async () => {
  await db.close();
});

beforeEach(async () => {
  await db.exec("DELETE FROM job_logs; DELETE FROM jobs; DELETE FROM agents; DELETE FROM enrollment_tokens;");
});

async function token(pool: string, opts: { name?: string; ttlMs?: number } = {}): Promise<string> {
  const id = newTokenId();
  const t = newEnrollmentToken(id);
  await agents.createToken({
    id,
    hash: secretHash(t),
    pool,
    agentName: opts.name,
    labels: { from: "token" },
    ttlMs: opts.ttlMs ?? 60_000,
    createdBy: "test",
  });
  return t;
}

function hello(name: string, pool: string, auth: OpenSessionInput["auth"], extra: Partial<OpenSessionInput> = {}) {
  return {
    name,
    pool,
    labels: { zone: "a" },
    version: "1",
    handlers: ["mock", "shell"],
    capacity: 2,
    jobsInFlight: [],
    auth,
    replica: "r1",
    sessionId: `s-${Math.random()}`,
    ...extra,
  } satisfies OpenSessionInput;
}

/** Enrolls `name` in `pool` and returns its credential and session id. */
async function enroll(name: string, pool: string, capacity = 2): Promise<{ credential: string; sessionId: string }> {
  const credential = newAgentCredential();
  const input = hello(
    name,
    pool,
    { kind: "token", hash: secretHash(await token(pool)), credentialHash: secretHash(credential) },
    { capacity },
  );
  await agents.openSession(input);
  return { credential, sessionId: input.sessionId };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    if (isStacklError(err)) return err.code;
    throw err;
  }
}

const spec = { invocation: { tool: "shell", command: ["true"] } };
const newJob = (target: string, tool = "shell", lostAfterMs = 60_000) =>
  jobs.create({ target, tool, spec, timeoutMs: 60_000, lostAfterMs, requestedBy: "test" });

describe("enrollment", () => {
  test("a token is single use, expires, and is scoped to its pool and name; refusals leave it unused", async () => {
    const t = await token("p1", { name: "n1" });
    const cred = secretHash(newAgentCredential());
    assert.equal(
      await code(agents.openSession(hello("n2", "p1", { kind: "token", hash: secretHash(t), credentialHash: cred }))),
      ErrorCode.PermissionDenied,
    );
    assert.equal(
      await code(agents.openSession(hello("n1", "p2", { kind: "token", hash: secretHash(t), credentialHash: cred }))),
      ErrorCode.PermissionDenied,
    );
    const opened = await agents.openSession(
      hello("n1", "p1", { kind: "token", hash: secretHash(t), credentialHash: cred }),
    );
    assert.equal(opened.enrolled, true);
    assert.deepEqual(opened.agent.labels, { zone: "a", from: "token" }, "token labels win over Hello labels");
    assert.equal(
      await code(agents.openSession(hello("n1", "p1", { kind: "token", hash: secretHash(t), credentialHash: cred }))),
      ErrorCode.Unauthenticated,
    );
    assert.equal(
      await code(
        agents.openSession(hello("x", "p1", { kind: "token", hash: secretHash("nope"), credentialHash: cred })),
      ),
      ErrorCode.Unauthenticated,
    );
    const expired = await token("p1", { ttlMs: 1 });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(
      await code(
        agents.openSession(hello("x", "p1", { kind: "token", hash: secretHash(expired), credentialHash: cred })),
      ),
      ErrorCode.Unauthenticated,
    );
  });

  test("an enrolled name cannot be taken by a pool token; a revoked agent is refused and may re-enroll", async () => {
    const { credential } = await enroll("a1", "p");
    const other = await token("p");
    const c2 = secretHash(newAgentCredential());
    assert.equal(
      await code(agents.openSession(hello("a1", "p", { kind: "token", hash: secretHash(other), credentialHash: c2 }))),
      ErrorCode.PermissionDenied,
    );
    assert.equal(
      await code(agents.openSession(hello("a1", "p", { kind: "credential", hash: secretHash(credential) }))),
      "ok",
    );
    assert.equal(
      await code(agents.openSession(hello("a2", "p", { kind: "credential", hash: secretHash(credential) }))),
      ErrorCode.PermissionDenied,
      "name must match the credential",
    );
    await agents.revoke("a1", "test");
    assert.equal(
      await code(agents.openSession(hello("a1", "p", { kind: "credential", hash: secretHash(credential) }))),
      ErrorCode.PermissionDenied,
    );
    assert.equal(
      await code(agents.openSession(hello("a1", "p", { kind: "token", hash: secretHash(other), credentialHash: c2 }))),
      "ok",
      "re-enrolled with a new token",
    );
    assert.equal(
      await code(agents.openSession(hello("a1", "p", { kind: "credential", hash: secretHash(credential) }))),
      ErrorCode.Unauthenticated,
      "the old credential is gone",
    );
  });
});

describe("claims and fencing", () => {
  test("claims respect capacity, tools, the live session and exclusions; every claim is epoch + 1", async () => {
    const { sessionId } = await enroll("a", "pool", 2);
    const j1 = await newJob("pool");
    const j2 = await newJob("a");
    const j3 = await newJob("pool");
    const j4 = await newJob("pool", "tofu");
    const claim = (sid: string, limit = 5, exclude: string[] = []) =>
      jobs.claim({ agent: "a", sessionId: sid, targets: ["a", "pool"], tools: ["mock", "shell"], limit, exclude });
    assert.deepEqual(await claim("other-session"), [], "a superseded session claims nothing");
    const first = await claim(sessionId, 5, [j1.id]);
    assert.deepEqual(
      first.map((c) => c.job.id),
      [j2.id, j3.id],
      "capacity 2; j1 excluded",
    );
    assert.ok(first.every((c) => c.job.epoch === 1 && c.job.state === "offered" && c.jobToken.startsWith("sjt_")));
    assert.deepEqual(await claim(sessionId), [], "full");
    const [c2] = first;
    assert.equal((await jobs.jobForToken(j2.id, secretHash(c2?.jobToken ?? "")))?.id, j2.id, "the job token works");
    assert.equal(await jobs.jobForToken(j3.id, secretHash(c2?.jobToken ?? "")), undefined, "only for its own job");
    assert.equal(await jobs.markRunning(j2.id, 1, "a"), true);
    assert.equal(await jobs.markRunning(j2.id, 2, "a"), false, "stale epoch");
    assert.equal(await jobs.decline(j3.id, 1, "a"), "pool");
    const again = await claim(sessionId);
    assert.deepEqual(
      again.map((c) => [c.job.id, c.job.epoch, c.job.attempt]),
      [[j1.id, 1, 1]],
    );
    assert.equal((await jobs.get(j4.id))?.state, "pending", "no agent offers tofu");
    const j3row = await jobs.get(j3.id);
    assert.deepEqual([j3row?.state, j3row?.epoch, j3row?.attempt], ["pending", 1, 0], "a decline is not a dispatch");
  });

  test("logs: contiguous, idempotent, fenced by epoch and agent; results likewise", async () => {
    const { sessionId } = await enroll("a", "pool");
    const j = await newJob("a");
    await jobs.claim({ agent: "a", sessionId, targets: ["a"], tools: ["shell"], limit: 1, exclude: [] });
    const chunk = (seq: number, epoch = 1) => ({
      jobId: j.id,
      seq,
      stream: 1,
      data: new TextEncoder().encode(`line ${seq}\n`),
      epoch,
      time: new Date(),
    });
    assert.deepEqual(await jobs.appendLog(chunk(1), "a"), { kind: "persisted", seq: 1 });
    assert.deepEqual(await jobs.appendLog(chunk(1), "a"), { kind: "duplicate", lastSeq: 1 });
    assert.deepEqual(await jobs.appendLog(chunk(3), "a"), { kind: "gap", lastSeq: 1 });
    assert.equal((await jobs.appendLog(chunk(2, 7), "a")).kind, "stale");
    assert.equal((await jobs.appendLog(chunk(2), "b")).kind, "stale");
    assert.deepEqual(await jobs.appendLog(chunk(2), "a"), { kind: "persisted", seq: 2 });
    const result = { outcome: "succeeded" as const, outputs: { x: 1 }, error: "", exitCode: 0, lastLogSeq: 2 };
    assert.equal((await jobs.finish(j.id, 2, "a", result)).kind, "stale");
    const done = await jobs.finish(j.id, 1, "a", result);
    assert.equal(done.kind, "recorded");
    assert.deepEqual(done.kind === "recorded" && [done.job.state, done.job.outputs], ["succeeded", { x: 1 }]);
    assert.equal((await jobs.finish(j.id, 1, "a", result)).kind, "duplicate");
    assert.equal((await jobs.appendLog(chunk(3), "a")).kind, "stale", "no logs after the result");
    assert.deepEqual(
      (await jobs.readLogs(j.id, 0, 10)).map((l) => l.seq),
      [1, 2],
    );
  });
});

describe("sessions, resume and leases", () => {
  test("resume decisions: same epoch and active → resume from the persisted seq; anything else → no", async () => {
    const { credential, sessionId } = await enroll("a", "pool", 4);
    const running = await newJob("a");
    const finished = await newJob("a");
    const offeredLost = await newJob("a");
    const runningLost = await newJob("a");
    await jobs.claim({ agent: "a", sessionId, targets: ["a"], tools: ["shell"], limit: 4, exclude: [] });
    for (const j of [running, finished, runningLost]) await jobs.markRunning(j.id, 1, "a");
    await jobs.appendLog(
      { jobId: running.id, seq: 1, stream: 1, data: new Uint8Array([65]), epoch: 1, time: new Date() },
      "a",
    );
    await jobs.finish(finished.id, 1, "a", {
      outcome: "failed",
      outputs: {},
      error: "boom",
      exitCode: 2,
      lastLogSeq: 0,
    });
    assert.equal(await agents.closeSession("a", "not-the-session"), false, "fenced by session id");
    assert.equal(await agents.closeSession("a", sessionId), true);
    const leased = await jobs.get(running.id);
    assert.ok(leased?.leaseUntil && leased.leaseUntil.getTime() > Date.now() + 50_000, "lease = now + lost_after");
    const opened = await agents.openSession(
      hello(
        "a",
        "pool",
        { kind: "credential", hash: secretHash(credential) },
        {
          jobsInFlight: [
            { jobId: running.id, epoch: 1, nextLogSeq: 1, finished: false },
            { jobId: finished.id, epoch: 1, nextLogSeq: 1, finished: true },
            { jobId: "job_unknown", epoch: 3, nextLogSeq: 0, finished: false },
          ],
        },
      ),
    );
    assert.deepEqual(
      opened.decisions.map((d) => [d.jobId, d.resume, d.nextLogSeq]),
      [
        [running.id, true, 2],
        ["job_unknown", false, 0],
      ],
      "the finished job gets no decision (its result was recorded)",
    );
    assert.deepEqual(
      opened.resumed.map((r) => r.id),
      [running.id],
    );
    assert.equal((await jobs.get(running.id))?.leaseUntil, null, "lease cleared");
    const o = await jobs.get(offeredLost.id);
    assert.deepEqual([o?.state, o?.agent, o?.attempt, o?.redispatched], ["pending", null, 0, false], "lost offer");
    const r = await jobs.get(runningLost.id);
    assert.deepEqual(
      [r?.state, r?.redispatched, r?.error?.code],
      ["pending", true, "agent_lost"],
      "unreported running job",
    );
    assert.deepEqual(opened.requeuedTargets, ["a"]);
  });

  test("a lapsed lease re-dispatches once, then fails with agent_lost; a cancelled one ends cancelled", async () => {
    const { sessionId } = await enroll("a", "pool", 4);
    const j = await newJob("pool", "shell", 1_000);
    const c = await newJob("pool", "shell", 1_000);
    let sid = sessionId;
    for (let round = 1; round <= 2; round++) {
      const claimed = await jobs.claim({
        agent: "a",
        sessionId: sid,
        targets: ["pool"],
        tools: ["shell"],
        limit: 4,
        exclude: [],
      });
      assert.ok(claimed.some((x) => x.job.id === j.id));
      if (round === 1) await jobs.requestCancel(c.id, "stop it", 1_000);
      await agents.closeSession("a", sid);
      await db.query("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE lease_until IS NOT NULL");
      const lost = await jobs.sweepLost();
      if (round === 1) {
        assert.deepEqual(
          lost.requeued.map((x) => x.id),
          [j.id],
        );
        assert.deepEqual(lost.cancelled, [c.id]);
        sid = `s-${round}`;
        await db.query("UPDATE agents SET session_id = $1, state = 'connected' WHERE name = 'a'", [sid]);
      } else {
        assert.deepEqual(lost.failed, [j.id]);
      }
    }
    const failed = await jobs.get(j.id);
    assert.deepEqual(
      [failed?.state, failed?.attempt, failed?.epoch, failed?.error?.code],
      ["failed", 2, 2, "agent_lost"],
    );
    const cancelled = await jobs.get(c.id);
    assert.deepEqual([cancelled?.state, cancelled?.error?.code], ["cancelled", "cancelled"]);
  });

  test("stale sessions: touch reports superseded ones; the sweeper disconnects agents whose replica went silent", async () => {
    const { sessionId } = await enroll("a", "pool");
    await enroll("b", "pool");
    assert.deepEqual(
      await agents.touchSessions([
        { name: "a", sessionId },
        { name: "b", sessionId: "old" },
      ]),
      [{ name: "b", sessionId: "old" }],
    );
    await db.query("UPDATE agents SET last_heartbeat_at = now() - interval '1 minute' WHERE name = 'b'");
    assert.deepEqual(await agents.sweepStale(30_000), ["b"]);
    assert.equal((await agents.get("b"))?.state, "disconnected");
    assert.equal((await agents.get("a"))?.state, "connected");
  });
});
