// Agent identity end to end: real `stackl serve`, PostgreSQL, NATS and `stackl-agent` processes. Enrollment with a
// single-use token; a reused token, an expired token, a revoked agent and a stream without a valid credential are
// all refused; RevokeAgent cuts the live stream at once.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AgentService, AgentState, type ConnectRequestSchema } from "../../../gen/stackl/v1/agents_pb.js";
import { JobState } from "../../../gen/stackl/v1/jobs_pb.js";
import { eventually } from "../../support/stackl-process.js";
import { Cluster, type Replica, sh } from "./cluster.js";

let c: Cluster;
let a: Replica;

before(async () => {
  c = await Cluster.start();
  a = await c.serve("enroll-a");
});

after(async () => {
  await c?.close();
});

/** Opens a raw Connect stream with one Hello and returns how the server ended it. */
type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;

async function rawHello(url: string, hello: Outgoing["msg"]): Promise<ConnectError | "welcome"> {
  const client = createClient(AgentService, createGrpcTransport({ baseUrl: url }));
  async function* requests(): AsyncGenerator<Outgoing> {
    yield { msg: hello };
    await new Promise((r) => setTimeout(r, 5_000));
  }
  try {
    for await (const res of client.connect(requests(), { timeoutMs: 10_000 })) {
      if (res.msg.case === "welcome") return "welcome";
    }
    throw new Error("the stream ended without an answer");
  } catch (err) {
    return ConnectError.from(err);
  }
}

describe("agent enrollment and identity", { timeout: 300_000 }, () => {
  test("enroll with a token: credential stored, agent connected, a job runs; the token cannot be used again", async () => {
    const token = await c.token(a, "enroll");
    const first = c.agent(a, { name: "enroll-1", pool: "enroll", token });
    await c.connected("enroll-1");
    const cred = JSON.parse(readFileSync(path.join(first.stateDir, "credential.json"), "utf8")) as {
      agent_credential: string;
    };
    assert.match(cred.agent_credential, /^sac_[A-Za-z0-9_-]{43}$/, "a 256-bit credential");
    const stored = await c.db.query<{ credential_hash: string; used_at: Date | null }>(
      `SELECT a.credential_hash, t.used_at FROM agents a JOIN enrollment_tokens t ON t.id = a.enrolled_with
        WHERE a.name = 'enroll-1'`,
    );
    assert.equal(stored.rows[0]?.credential_hash.length, 64, "only the SHA-256 of the credential is stored");
    assert.notEqual(stored.rows[0]?.used_at, null, "the token is consumed");
    const tokens = await c.db.query<{ hash: string }>("SELECT hash FROM enrollment_tokens");
    assert.ok(
      tokens.rows.every((t) => t.hash !== token && !token.includes(t.hash)),
      "the token is stored hashed",
    );

    const { job } = await a.jobs.runJob({ target: "enroll-1", spec: sh("echo enrolled"), wait: { seconds: 30n } });
    assert.equal(job?.state, JobState.SUCCEEDED);

    // Same token, another agent (fresh state dir): refused, never connected.
    const second = c.agent(a, { name: "enroll-2", pool: "enroll", token });
    await eventually("the reused token is refused", async () =>
      second.logs().includes("the server refused the enrollment token"),
    );
    assert.match(a.proc.logs(), /already used/);
    const row = await c.db.query("SELECT 1 FROM agents WHERE name = 'enroll-2'");
    assert.equal(row.rows.length, 0, "no agent was created");
    assert.equal(existsSync(path.join(second.stateDir, "credential.json")), false);
    second.signal("SIGKILL");
  });

  test("an expired token is refused", async () => {
    const token = await c.token(a, "enroll", { ttlMs: 1_000 });
    await new Promise((r) => setTimeout(r, 1_500));
    const late = c.agent(a, { name: "enroll-late", pool: "enroll", token });
    await eventually("the expired token is refused", async () =>
      late.logs().includes("the server refused the enrollment token"),
    );
    assert.match(a.proc.logs(), /enrollment token has expired/);
    assert.equal((await c.db.query("SELECT 1 FROM agents WHERE name = 'enroll-late'")).rows.length, 0);
    late.signal("SIGKILL");
  });

  test("a token scoped to another pool or name is refused and stays unused", async () => {
    const token = await c.token(a, "enroll", { name: "only-this-one" });
    const wrong = await rawHello(a.url, {
      case: "hello",
      value: { name: "someone-else", pool: "enroll", credential: { case: "enrollmentToken", value: token } },
    });
    assert.ok(wrong instanceof ConnectError && wrong.code === Code.PermissionDenied, String(wrong));
    const right = await rawHello(a.url, {
      case: "hello",
      value: { name: "only-this-one", pool: "enroll", credential: { case: "enrollmentToken", value: token } },
    });
    assert.equal(right, "welcome", "a refused attempt does not consume the token");
  });

  test("a stream without a valid credential is refused", async () => {
    const none = await rawHello(a.url, { case: "hello", value: { name: "x", pool: "enroll" } });
    assert.ok(none instanceof ConnectError && none.code === Code.Unauthenticated, String(none));
    const bogus = await rawHello(a.url, {
      case: "hello",
      value: { name: "x", pool: "enroll", credential: { case: "agentCredential", value: "sac_not-a-credential" } },
    });
    assert.ok(bogus instanceof ConnectError && bogus.code === Code.Unauthenticated, String(bogus));
    const notHello = await rawHello(a.url, { case: "heartbeat", value: {} });
    assert.ok(notHello instanceof ConnectError && notHello.code === Code.InvalidArgument, String(notHello));
  });

  test("RevokeAgent cuts the stream at once, re-queues its job, and the credential is refused from then on", async () => {
    const token = await c.token(a, "revoke");
    const agent = c.agent(a, { name: "revoke-1", pool: "revoke", token });
    await c.connected("revoke-1");
    const { job } = await a.jobs.runJob({ target: "revoke-1", spec: sh("echo started; sleep 60") });
    const id = job?.id ?? "";
    await c.jobUntil(id, "running", (j) => j.state === "running");
    const revokedAt = Date.now();
    const res = await a.agents.revokeAgent({ name: "revoke-1", reason: "test revokes it" });
    assert.equal(res.agent?.state, AgentState.REVOKED);
    assert.deepEqual(res.requeuedJobIds, [id]);
    await eventually(
      "the agent sees its stream cut",
      async () => agent.lines().some((l) => String(l.err ?? "").includes("PermissionDenied")),
      { timeoutMs: 10_000 },
    );
    assert.ok(Date.now() - revokedAt < 5_000, "cut within seconds");
    assert.ok(
      agent.lines().some((l) => l.msg === "dropping job" && l.job === id),
      "the agent was told to drop the re-queued job",
    );
    // Restart it with its stored credential: refused (PERMISSION_DENIED), never connected again.
    agent.signal("SIGKILL");
    await agent.exited;
    const again = c.agent(a, { name: "revoke-1", pool: "revoke", stateDir: agent.stateDir });
    await eventually("the revoked credential is refused", async () =>
      again.logs().includes("the server refused this agent's credential"),
    );
    assert.match(a.proc.logs(), /agent revoke-1 was revoked \(test revokes it\)/);
    const state = await a.agents.getAgent({ name: "revoke-1" });
    assert.equal(state.agent?.state, AgentState.REVOKED);
    const requeued = await c.job(id);
    assert.equal(requeued.state, "pending", "the job went back to pending (no other agent serves revoke-1)");
    await a.jobs.cancelJob({ id });
    again.signal("SIGKILL");
  });
});
