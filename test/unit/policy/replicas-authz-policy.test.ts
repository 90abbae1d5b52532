// The built-in replicas and authz policies, evaluated from their committed WebAssembly bundles.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { authorize, type ReplicasInput, replicasSolutions } from "../../../src/policy/contracts.js";
import { PolicyEngine } from "../../../src/policy/policy-engine.js";

const engine = new PolicyEngine();

describe("replicas.solutions", () => {
  const services: ReplicasInput["services"] = {
    web: { service: "web", targets: ["p.a.1", "p.a.2", "p.b.1"] },
    db: { service: "database", targets: ["p.b.1", "p.b.2"] },
    lb: { service: "loadbalancer", targets: ["p.a.1"] },
  };

  test("keeps the first N candidates of each service, in the given order", async () => {
    const { value } = await replicasSolutions(
      { parameters: { services: { web: 2, db: 1, lb: 1 } }, services },
      { engine },
    );
    assert.deepEqual(value, {
      fulfilled: true,
      services: {
        db: { service: "database", targets: ["p.b.1"] },
        lb: { service: "loadbalancer", targets: ["p.a.1"] },
        web: { service: "web", targets: ["p.a.1", "p.a.2"] },
      },
    });
  });

  test("exactly as many candidates as replicas is enough; the order of candidates is kept", async () => {
    const { value } = await replicasSolutions(
      {
        parameters: { services: { web: 3 } },
        services: { web: { service: "web", targets: ["z.z.z", "a.a.a", "m.m.m"] } },
      },
      { engine },
    );
    assert.deepEqual(value, {
      fulfilled: true,
      services: { web: { service: "web", targets: ["z.z.z", "a.a.a", "m.m.m"] } },
    });
  });

  test("not enough targets: names the short services with counts, in alias order", async () => {
    const { value } = await replicasSolutions(
      { parameters: { services: { web: 4, db: 3, lb: 1 } }, services },
      { engine },
    );
    assert.deepEqual(value, {
      fulfilled: false,
      msg: 'Not enough targets for services {"db" (3 requested, 2 available), "web" (4 requested, 3 available)}',
    });
  });

  test("a service without a replica count is not placed (as the original)", async () => {
    const { value } = await replicasSolutions({ parameters: { services: { web: 1, db: 1 } }, services }, { engine });
    assert.deepEqual(value, {
      fulfilled: false,
      msg: 'Not enough targets for services {"lb" (no replica count in parameters.services)}',
    });
  });

  test("exclusive placement is not supported: not fulfilled, as the original", async () => {
    const { value } = await replicasSolutions(
      { parameters: { services: { web: 1, db: 1, lb: 1 }, exclusive: true }, services },
      { engine },
    );
    assert.equal(value.fulfilled, false);
    assert.ok(!value.fulfilled && value.msg.endsWith("exclusive placement (parameters.exclusive) is not supported"));
  });

  test("deterministic across key orders", async () => {
    const a = await replicasSolutions({ parameters: { services: { web: 2, db: 2, lb: 1 } }, services }, { engine });
    const reversed = Object.fromEntries(Object.entries(services).reverse());
    const b = await replicasSolutions(
      { parameters: { services: { lb: 1, db: 2, web: 2 } }, services: reversed },
      { engine },
    );
    assert.equal(JSON.stringify(b.value), JSON.stringify(a.value));
  });
});

describe("stackl.authz", () => {
  const table: Array<[name: string, roles: string[], rpc: string, allow: boolean]> = [
    // admin: everything
    ["alice", ["admin"], "stackl.v1.DocumentService/ApplyDocuments", true],
    ["alice", ["admin"], "stackl.v1.StackInstanceService/DeleteStackInstance", true],
    ["alice", ["admin"], "stackl.v1.AgentService/Connect", true],
    ["alice", ["admin"], "stackl.v1.FutureService/SomethingNew", true],
    // viewer: read-only
    ["bob", ["viewer"], "stackl.v1.DocumentService/GetDocument", true],
    ["bob", ["viewer"], "stackl.v1.DocumentService/ListDocuments", true],
    ["bob", ["viewer"], "stackl.v1.DocumentService/WatchDocuments", true],
    ["bob", ["viewer"], "stackl.v1.DocumentService/ListRevisions", true],
    ["bob", ["viewer"], "stackl.v1.JobService/StreamJobLogs", true],
    ["bob", ["viewer"], "stackl.v1.StackInstanceService/PlanStackInstance", true],
    ["bob", ["viewer"], "stackl.v1.PolicyService/EvaluatePolicy", true],
    ["bob", ["viewer"], "stackl.v1.PolicyService/ListDecisions", true],
    ["bob", ["viewer"], "stackl.v1.AgentService/ListAgents", true],
    ["bob", ["viewer"], "grpc.reflection.v1.ServerReflection/ServerReflectionInfo", true],
    ["bob", ["viewer"], "stackl.v1.DocumentService/ApplyDocuments", false],
    ["bob", ["viewer"], "stackl.v1.DocumentService/RestoreRevision", false],
    ["bob", ["viewer"], "stackl.v1.StackInstanceService/CreateStackInstance", false],
    ["bob", ["viewer"], "stackl.v1.JobService/CancelJob", false],
    ["bob", ["viewer"], "stackl.v1.AgentService/Connect", false],
    ["bob", ["viewer"], "stackl.v1.AgentService/CreateEnrollmentToken", false],
    ["bob", ["viewer"], "other.v1.Foreign/GetThing", false], // Get* only counts inside stackl.v1
    // agent: Connect only
    ["agent-7", ["agent"], "stackl.v1.AgentService/Connect", true],
    ["agent-7", ["agent"], "stackl.v1.AgentService/ListAgents", false],
    ["agent-7", ["agent"], "stackl.v1.DocumentService/GetDocument", false],
    // local (embedded dev) is admin whatever its roles
    ["local", [], "stackl.v1.DocumentService/ApplyDocuments", true],
    ["local", [], "stackl.v1.AgentService/RevokeAgent", true],
    // no roles / unknown roles
    ["mallory", [], "stackl.v1.DocumentService/GetDocument", false],
    ["mallory", ["superuser"], "stackl.v1.DocumentService/GetDocument", false],
    // health is public
    ["mallory", [], "grpc.health.v1.Health/Check", true],
    ["mallory", [], "grpc.health.v1.Health/Watch", true],
    // several roles: the union
    ["carol", ["viewer", "agent"], "stackl.v1.AgentService/Connect", true],
    ["carol", ["viewer", "agent"], "stackl.v1.TaskService/GetTask", true],
    ["carol", ["viewer", "agent"], "stackl.v1.TaskService/CancelTask", false],
  ];

  for (const [name, roles, rpc, allow] of table) {
    test(`${name} [${roles.join(",")}] ${rpc} → ${allow ? "allow" : "deny"}`, async () => {
      const { value, bundleSha256 } = await authorize({ principal: { name, roles }, rpc }, { engine });
      assert.equal(value.allow, allow, value.reason);
      assert.match(value.reason, allow ? /^allowed: / : /^denied: /);
      assert.match(bundleSha256, /^[0-9a-f]{64}$/);
    });
  }

  test("reasons name the granting role or what would be needed", async () => {
    const ok = await authorize(
      { principal: { name: "bob", roles: ["viewer"] }, rpc: "stackl.v1.DocumentService/GetDocument" },
      { engine },
    );
    assert.equal(ok.value.reason, "allowed: role viewer may call read RPC stackl.v1.DocumentService/GetDocument");
    const denied = await authorize(
      { principal: { name: "bob", roles: ["viewer"] }, rpc: "stackl.v1.DocumentService/ApplyDocuments" },
      { engine },
    );
    assert.equal(
      denied.value.reason,
      'denied: no role of "bob" (viewer) may call write RPC stackl.v1.DocumentService/ApplyDocuments (roles that may: admin)',
    );
    const agentDenied = await authorize(
      { principal: { name: "x", roles: [] }, rpc: "stackl.v1.AgentService/Connect" },
      { engine },
    );
    assert.equal(
      agentDenied.value.reason,
      'denied: "x" has no role that may call agent RPC stackl.v1.AgentService/Connect (roles that may: admin, agent)',
    );
  });

  test("malformed input is denied, never an error", async () => {
    for (const input of [
      { principal: { name: "alice", roles: ["admin"] }, rpc: "" },
      { principal: { name: "alice", roles: ["admin"] }, rpc: "no-slash" },
      { principal: { name: "alice", roles: ["admin"] } },
      { rpc: "stackl.v1.DocumentService/GetDocument" },
      { principal: { name: 42, roles: "admin" }, rpc: "stackl.v1.DocumentService/ApplyDocuments" },
    ]) {
      const { value } = await authorize(input as never, { engine });
      assert.equal(value.allow, false, JSON.stringify(input));
      assert.match(value.reason, /^denied: /);
    }
  });
});
