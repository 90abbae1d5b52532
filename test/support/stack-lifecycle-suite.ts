// Stack instances end to end: placement, steps dispatched as jobs to a real agent running a shell automation that
// records a ledger, on the embedded default (dev runtime with its in-process agent). Covers the rules of issue 6
// and regression tests for the original's bugs (reference 10.1): alias != service name (1), force delete (2), stages
// stop later stages and delete reverses (3), as_group is awaited (4), removing extra services (6), replica scale
// up/down on distinct targets (7), update keeps outputs (8), exact status per step (9), no lost updates (12).
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DocumentService } from "../../gen/stackl/v1/documents_pb.js";
import {
  type StackInstance,
  StackInstanceService,
  StackInstanceState,
  StepStatus,
} from "../../gen/stackl/v1/stack_instances_pb.js";
import { TaskState } from "../../gen/stackl/v1/tasks_pb.js";
import { stackTree } from "./stack-fixtures.js";

const WAIT = durationFromMs(120_000);

export interface StackEnv {
  url: string;
  close(): Promise<void>;
}

/** The lifecycle suite, run against any running STACKL with an agent in pool `common`. */
export function lifecycleSuite(name: string, start: () => Promise<StackEnv>) {
  describe(name, { timeout: 600_000 }, () => {
    let env: StackEnv;
    let dir: string;
    let ledger: string;
    let stacks: Client<typeof StackInstanceService>;

    const lines = async () => (await readFile(ledger, "utf8")).trim().split("\n").filter(Boolean);
    const resetLedger = async () => writeFile(ledger, "");
    const get = async (n: string) => (await stacks.getStackInstance({ name: n })).instance as StackInstance;
    const stepsOf = (i: StackInstance) =>
      i.steps.map(
        (s) =>
          `${s.action} ${s.service}/${s.functionalRequirement}@${s.infrastructureTargets.join("+")}=${StepStatus[s.status]}`,
      );

    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), "stackl-stacks-"));
      ledger = path.join(dir, "ledger.txt");
      await writeFile(ledger, "");
      env = await start();
      const transport = createGrpcTransport({ baseUrl: env.url });
      stacks = createClient(StackInstanceService, transport);
      const documents = createClient(DocumentService, transport);
      await documents.applyDocuments({ documents: stackTree().map((document) => ({ document })) });
    });

    after(async () => {
      await env?.close();
      await rm(dir, { recursive: true, force: true });
    });

    test("create: stages in order, outputs flow into later steps, every step ready", async () => {
      const res = await stacks.createStackInstance({
        spec: {
          name: "shop",
          stackApplicationTemplate: "webapp",
          stackInfrastructureTemplate: "estate",
          replicas: { web: 2 },
          params: { ledger },
        },
        wait: WAIT,
      });
      assert.equal(TaskState[res.task?.state ?? 0], "SUCCEEDED", res.task?.error?.message);
      const inst = await get("shop");
      assert.equal(StackInstanceState[inst.state], "READY", inst.reason);
      assert.ok(
        inst.steps.every((s) => s.status === StepStatus.READY),
        stepsOf(inst).join("\n"),
      );
      const l = await lines();
      assert.equal(l[0], "create network net prod.brussels.z1 subnet=none size=none");
      const vm = l.filter((x) => x.startsWith("create vm web"));
      const app = l.filter((x) => x.startsWith("create app web"));
      assert.equal(vm.length, 2);
      assert.equal(app.length, 2);
      assert.ok(
        vm.every((x) => x.includes("subnet=10.1.0.0/24 size=m")),
        "outputs of the network step reached the vm steps",
      );
      assert.ok(l.indexOf(vm[1] as string) < l.indexOf(app[0] as string), "functional requirements in order");
      assert.equal(l.at(-1), "create lb front prod.brussels.z1 subnet=10.1.0.0/24 size=none");
      assert.equal(inst.instanceOutputs?.subnet, "10.1.0.0/24");
      assert.deepEqual(
        inst.services.web?.targets.map((t) => t.infrastructureTarget),
        ["prod.brussels.z1", "prod.brussels.z2"],
      );
      assert.deepEqual(
        inst.services.web?.targets.map((t) => t.replicaIndex),
        [0, 1],
      );
      assert.deepEqual(inst.services.web?.targets[0]?.outputs?.stackl_hosts, ["host-prod-brussels-z1"]);
    });

    test("update: params merge, scale down tears the removed replica down (reversed), outputs kept", async () => {
      await resetLedger();
      const res = await stacks.updateStackInstance({
        name: "shop",
        params: { size: "xl" },
        replicas: { web: 1 },
        wait: WAIT,
      });
      assert.equal(TaskState[res.task?.state ?? 0], "SUCCEEDED", res.task?.error?.message);
      const l = await lines();
      const del = l.filter((x) => x.startsWith("delete"));
      assert.deepEqual(
        del.map((x) => x.split(" ").slice(0, 4).join(" ")),
        ["delete app web prod.brussels.z2", "delete vm web prod.brussels.z2"],
      );
      const upd = l.filter((x) => x.startsWith("update vm web"));
      assert.deepEqual(upd, ["update vm web prod.brussels.z1 subnet=10.1.0.0/24 size=xl"], "outputs survive an update");
      const inst = await get("shop");
      assert.deepEqual(
        inst.services.web?.targets.map((t) => t.infrastructureTarget),
        ["prod.brussels.z1"],
      );
    });

    test("scale up onto distinct targets; an as_group step runs once over all targets and is awaited", async () => {
      await resetLedger();
      const res = await stacks.updateStackInstance({ name: "shop", replicas: { web: 2, front: 2 }, wait: WAIT });
      assert.equal(TaskState[res.task?.state ?? 0], "SUCCEEDED", res.task?.error?.message);
      const inst = await get("shop");
      assert.deepEqual(
        inst.services.web?.targets.map((t) => [t.infrastructureTarget, t.replicaIndex]),
        [
          ["prod.brussels.z1", 0],
          ["prod.brussels.z2", 1],
        ],
      );
      const l = await lines();
      assert.ok(l.includes("create vm web prod.brussels.z2 subnet=10.1.0.0/24 size=xl"));
      const lb = l.filter((x) => x.includes(" lb front "));
      assert.equal(lb.length, 1, "as_group: one run for all the service's targets");
      assert.match(lb[0] as string, /prod\.brussels\.z1,prod\.brussels\.z2/);
      const lbStep = inst.steps.find((s) => s.functionalRequirement === "lb");
      assert.equal(lbStep?.status, StepStatus.READY, "the as_group step's result was recorded");
    });

    test("a failed step fails the instance with the reason; later stages are skipped; retry recovers", async () => {
      await resetLedger();
      const res = await stacks.updateStackInstance({
        name: "shop",
        params: { fail_fr: "app", fail_action: "update" },
        wait: WAIT,
      });
      assert.equal(TaskState[res.task?.state ?? 0], "SUCCEEDED");
      let inst = await get("shop");
      assert.equal(StackInstanceState[inst.state], "FAILED");
      assert.match(inst.reason, /web\/app on prod\.brussels\.z\d: /);
      const lb = inst.steps.find((s) => s.functionalRequirement === "lb");
      assert.equal(StepStatus[lb?.status ?? 0], "SKIPPED", "the later stage did not run");
      assert.ok(!(await lines()).some((x) => x.includes(" lb ")));
      await stacks.updateStackInstance({ name: "shop", params: { fail_fr: "" }, disableInvocation: true });
      const retry = await stacks.retryStackInstance({ name: "shop", wait: WAIT });
      assert.equal(TaskState[retry.task?.state ?? 0], "SUCCEEDED");
      inst = await get("shop");
      assert.equal(StackInstanceState[inst.state], "READY", inst.reason);
    });

    test("extra services are added, and removing one tears down only that one", async () => {
      await resetLedger();
      let res = await stacks.updateStackInstance({
        name: "shop",
        services: [{ name: "cache", service: "network_svc" }],
        wait: WAIT,
      });
      assert.equal(TaskState[res.task?.state ?? 0], "SUCCEEDED");
      let inst = await get("shop");
      assert.equal(StackInstanceState[inst.state], "READY", inst.reason);
      assert.ok(inst.services.cache);
      await resetLedger();
      res = await stacks.updateStackInstance({ name: "shop", wait: WAIT });
      inst = await get("shop");
      assert.equal(StackInstanceState[inst.state], "READY", inst.reason);
      assert.equal(inst.services.cache, undefined);
      const del = (await lines()).filter((x) => x.startsWith("delete"));
      assert.deepEqual(
        del.map((x) => x.split(" ").slice(0, 3).join(" ")),
        ["delete network cache"],
      );
    });

    test("delete runs in exact reverse; a failing teardown keeps the instance; force deletes it anyway", async () => {
      await stacks.updateStackInstance({
        name: "shop",
        params: { fail_fr: "vm", fail_action: "delete" },
        disableInvocation: true,
      });
      await resetLedger();
      const res = await stacks.deleteStackInstance({ name: "shop", wait: WAIT });
      assert.equal(TaskState[res.task?.state ?? 0], "SUCCEEDED");
      let inst = await get("shop");
      assert.equal(StackInstanceState[inst.state], "FAILED");
      assert.match(inst.reason, /delete failed: web\/vm/);
      await resetLedger();
      const forced = await stacks.deleteStackInstance({ name: "shop", force: true, wait: WAIT });
      assert.equal(TaskState[forced.task?.state ?? 0], "SUCCEEDED");
      inst = await get("shop");
      assert.equal(StackInstanceState[inst.state], "DELETED");
      assert.match(inst.reason, /force-deleted; failed: web\/vm/);
      const l = (await lines()).map((x) => x.split(" ").slice(0, 3).join(" "));
      // Reverse of create: edge stage, then compute (app before vm), then network; force attempted everything.
      assert.equal(l[0], "delete lb front");
      assert.equal(l.at(-1), "delete network net");
      const firstApp = l.indexOf("delete app web");
      const firstVm = l.indexOf("delete vm web");
      assert.ok(firstApp >= 0 && firstVm > firstApp, l.join("\n"));
      assert.equal(l.filter((x) => x === "delete vm web").length, 2, "force attempted the vm teardown on every target");
    });
  });
}
