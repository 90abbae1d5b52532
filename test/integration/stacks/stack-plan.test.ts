// PlanStackInstance through the real server on the embedded store, with policy templates compiled by the real opa
// CLI on apply (older Rego syntax): deterministic placement, explained rejections, SAT-policy outputs, SIT-policy
// infringements, replicas, service-policy intersection, template order without stages, and the decision log.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DocumentService, type PolicyTemplate } from "../../../gen/stackl/v1/documents_pb.js";
import { PolicyService } from "../../../gen/stackl/v1/policies_pb.js";
import { StackInstanceService } from "../../../gen/stackl/v1/stack_instances_pb.js";
import { type RuntimeServer, startRuntimeServer } from "../../support/runtime-server.js";
import { stackTree } from "../../support/stack-fixtures.js";

describe("PlanStackInstance", { timeout: 300_000 }, () => {
  let dir: string;
  let server: RuntimeServer;
  let stacks: Client<typeof StackInstanceService>;
  let policies: Client<typeof PolicyService>;
  let documents: Client<typeof DocumentService>;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "stackl-plan-"));
    server = await startRuntimeServer({ STACKL_DATA_DIR: dir });
    const transport = createGrpcTransport({ baseUrl: server.url });
    stacks = createClient(StackInstanceService, transport);
    policies = createClient(PolicyService, transport);
    documents = createClient(DocumentService, transport);
    await documents.applyDocuments({ documents: stackTree().map((document) => ({ document })) });
  });

  after(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("policy templates in the older Rego syntax are compiled by opa when applied", async () => {
    const got = await documents.getDocument({ kind: 8, name: "keep_out_of_zone" });
    const t = got.document?.spec.value as PolicyTemplate;
    assert.ok(t.bundle.length > 0);
    assert.match(t.bundleSha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(t.entrypoints, ["keep_out_of_zone/solutions"]);
  });

  test("placement is deterministic and every rejected target is explained", async () => {
    const { plan } = await stacks.planStackInstance({
      spec: {
        name: "shop",
        stackApplicationTemplate: "webapp",
        stackInfrastructureTemplate: "estate",
        replicas: { web: 2 },
      },
    });
    assert.ok(plan?.fulfilled, plan?.message);
    const web = plan?.services.find((s) => s.alias === "web");
    assert.deepEqual(web?.targets, ["prod.brussels.z1", "prod.brussels.z2"]);
    const why = Object.fromEntries((web?.rejections ?? []).map((r) => [r.target, `${r.phase}:${r.policy}`]));
    assert.equal(why["small.paris.z1"], "orchestration:orchestration.resources");
    assert.equal(why["prod.paris.z3"], "sat_policy:keep_out_of_zone");
    const net = plan?.services.find((s) => s.alias === "net");
    assert.deepEqual(net?.targets, ["prod.brussels.z1"], "one replica by default: the first candidate by key");
    // Steps: stages in order; the as_group FR is one step; service alias != service name is fine.
    const steps = plan?.steps.map(
      (s) => `${s.stageIndex}:${s.service}/${s.functionalRequirement}@${s.infrastructureTargets.join("+")}`,
    );
    assert.deepEqual(steps, [
      "0:net/network@prod.brussels.z1",
      "1:web/vm@prod.brussels.z1",
      "1:web/vm@prod.brussels.z2",
      "1:web/app@prod.brussels.z1",
      "1:web/app@prod.brussels.z2",
      "2:front/lb@prod.brussels.z1",
    ]);
    const again = await stacks.planStackInstance({
      spec: {
        name: "shop",
        stackApplicationTemplate: "webapp",
        stackInfrastructureTemplate: "estate",
        replicas: { web: 2 },
      },
    });
    assert.deepEqual(again.plan?.services, plan?.services, "the same request plans the same way");
  });

  test("not enough targets for the replicas: not fulfilled, with the reason", async () => {
    const { plan } = await stacks.planStackInstance({
      spec: {
        name: "shop",
        stackApplicationTemplate: "webapp",
        stackInfrastructureTemplate: "estate",
        replicas: { web: 3 },
      },
    });
    assert.equal(plan?.fulfilled, false);
    assert.match(plan?.message ?? "", /web/);
    assert.ok(plan?.services.find((s) => s.alias === "web")?.rejections.some((r) => r.phase === "replicas"));
  });

  test("SIT policy infringements reject the plan; SAT-policy outputs are kept per target", async () => {
    const { plan } = await stacks.planStackInstance({
      spec: {
        name: "p2",
        stackApplicationTemplate: "plain",
        stackInfrastructureTemplate: "estate",
        replicas: { zeta: 3 },
        params: { forbidden: true },
      },
    });
    assert.equal(plan?.fulfilled, false);
    assert.match(plan?.message ?? "", /prod\.paris\.z3: target prod\.paris\.z3 forbids this stack/);
    const ok = await stacks.planStackInstance({
      spec: { name: "p2", stackApplicationTemplate: "plain", stackInfrastructureTemplate: "estate" },
    });
    assert.ok(ok.plan?.fulfilled, ok.plan?.message);
    const zeta = ok.plan?.services.find((s) => s.alias === "zeta");
    assert.deepEqual(zeta?.opaOutputs["prod.brussels.z1"], { rack: "rack-prod.brussels.z1" });
    assert.deepEqual(
      ok.plan?.steps.map((s) => s.service),
      ["zeta", "alpha"],
      "without stages, services run in the template's order, not alphabetically",
    );
  });

  test("several service policies: the intersection of their filters, in declared order", async () => {
    const { plan } = await stacks.planStackInstance({
      spec: {
        name: "p3",
        stackApplicationTemplate: "filtered",
        stackInfrastructureTemplate: "estate",
        replicas: { wf: 2 },
      },
    });
    assert.ok(plan?.fulfilled, plan?.message);
    const steps = plan?.steps.map(
      (s) => `${s.functionalRequirement}@${s.infrastructureTargets[0]}:${s.skipReason ? "skip" : "run"}`,
    );
    assert.deepEqual(steps, [
      "vm@prod.brussels.z1:run",
      "vm@prod.brussels.z2:run",
      "app@prod.brussels.z1:run",
      "app@prod.brussels.z2:skip",
    ]);
  });

  test("every decision is logged and EvaluatePolicy tests a policy on an input", async () => {
    const list = await policies.listDecisions({ stackInstance: "shop" });
    const kinds = new Set(list.decisions.map((d) => `${d.phase}:${d.policy}`));
    assert.ok(kinds.has("orchestration:orchestration"), [...kinds].join(","));
    assert.ok(kinds.has("sat_policy:keep_out_of_zone"));
    assert.ok(kinds.has("replicas:replicas"));
    const ev = await policies.evaluatePolicy({
      policy: "no_forbidden",
      rule: "infringement",
      input: {
        kind: {
          case: "structValue",
          value: {
            fields: {
              target: { kind: { case: "stringValue", value: "x" } },
              stack_instance_params: {
                kind: {
                  case: "structValue",
                  value: { fields: { forbidden: { kind: { case: "boolValue", value: true } } } },
                },
              },
            },
          },
        },
      },
    });
    assert.equal(ev.defined, true);
    assert.match(JSON.stringify(ev.result), /target x forbids this stack/);
  });
});
