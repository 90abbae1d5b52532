// The distributed mode under failure: two `stackl serve` replicas behind a TCP load balancer, three workers, two
// agents. A realistic stack (stages, replicas on several targets, outputs flowing between steps) is created, updated
// and deleted while one server replica and the worker running the orchestration are killed with SIGKILL mid-run.
// The instance still reaches the right final state, no step runs twice, and the agents reconnect to the surviving
// replica and resume their jobs.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AgentService, AgentState } from "../../../gen/stackl/v1/agents_pb.js";
import { DocumentService } from "../../../gen/stackl/v1/documents_pb.js";
import { StackInstanceService, StackInstanceState } from "../../../gen/stackl/v1/stack_instances_pb.js";
import { TaskService } from "../../../gen/stackl/v1/tasks_pb.js";
import { type Cluster, startCluster } from "../../support/cluster.js";
import { stackTree } from "../../support/stack-fixtures.js";
import { eventually } from "../../support/stackl-process.js";
import { startTcpProxy, type TcpProxy } from "../../support/tcp-proxy.js";

describe("cluster: kill -9 a server replica and the orchestrating worker mid-run", { timeout: 600_000 }, () => {
  let cluster: Cluster;
  let lb: TcpProxy;
  let dir: string;
  let ledger: string;
  let stacks: Client<typeof StackInstanceService>;
  let tasks: Client<typeof TaskService>;
  let agents: Client<typeof AgentService>;

  const lines = async () => (await readFile(ledger, "utf8")).trim().split("\n").filter(Boolean);
  /** Every (action, functional requirement, service, targets) ran exactly once. */
  const assertNoStepTwice = (ls: string[]) => {
    const keys = ls.map((l) => l.split(" ").slice(0, 4).join(" "));
    const dup = keys.filter((k, i) => keys.indexOf(k) !== i);
    assert.deepEqual(dup, [], `steps that ran twice:\n${ls.join("\n")}`);
  };
  /** The worker whose name is on the instance's current run task. */
  const runningWorker = async (name: string) => {
    const inst = (await stacks.getStackInstance({ name })).instance;
    const task = (await tasks.getTask({ id: inst?.taskId ?? "" })).task;
    return cluster.workers.find((w) => task?.worker.startsWith(`${w.name}:`));
  };
  const waitState = (name: string, state: StackInstanceState) =>
    eventually(
      `${name} ${StackInstanceState[state]}`,
      async () => {
        const i = (await stacks.getStackInstance({ name })).instance;
        if (i?.state === StackInstanceState.FAILED) throw new Error(`failed: ${i.reason}`);
        return i?.state === state ? i : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 500 },
    );

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "stackl-kill-"));
    ledger = path.join(dir, "ledger.txt");
    await writeFile(ledger, "");
    cluster = await startCluster({
      servers: 2,
      workers: 3,
      agents: 0,
      env: { STACKL_TASK_LEASE: "3s", STACKL_SWEEP_PERIOD: "1s", STACKL_REPUBLISH_AFTER: "5s" },
    });
    lb = await startTcpProxy(cluster.servers.map((s) => s.port));
    await cluster.addAgent("agent-1", lb.url);
    await cluster.addAgent("agent-2", lb.url);
    // Clients talk to the replica that survives.
    const transport = createGrpcTransport({ baseUrl: cluster.servers[1]?.url ?? "" });
    stacks = createClient(StackInstanceService, transport);
    tasks = createClient(TaskService, transport);
    agents = createClient(AgentService, transport);
    await createClient(DocumentService, transport).applyDocuments({
      documents: stackTree().map((document) => ({ document })),
    });
  });

  after(async () => {
    await lb?.close();
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test("create survives the loss of server-1 and of the orchestrating worker", async () => {
    await stacks.createStackInstance({
      spec: {
        name: "shop",
        stackApplicationTemplate: "webapp",
        stackInfrastructureTemplate: "estate",
        replicas: { web: 2, front: 2 },
        params: { ledger, sleep: 1 },
      },
    });
    await eventually("the first steps ran", async () => (await lines()).length >= 2, { timeoutMs: 60_000 });
    const worker = await runningWorker("shop");
    assert.ok(worker, "a worker holds the run");
    cluster.servers[0]?.kill("SIGKILL");
    worker.kill("SIGKILL");
    const inst = await waitState("shop", StackInstanceState.READY);
    const ls = await lines();
    assertNoStepTwice(ls);
    assert.equal(ls.filter((l) => l.startsWith("create")).length, 6, ls.join("\n"));
    assert.ok(ls.filter((l) => l.startsWith("create vm")).every((l) => l.includes("subnet=10.1.0.0/24")));
    assert.deepEqual(Object.keys(inst.services).sort(), ["front", "net", "web"]);
    // Both agents are connected again, now through the surviving replica.
    for (const name of ["agent-1", "agent-2"]) {
      await eventually(
        `${name} on server-2`,
        async () => {
          const a = (await agents.getAgent({ name })).agent;
          return a?.state === AgentState.CONNECTED && a.replica === "server-2";
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
    }
  });

  test("update and delete with another worker killed mid-run reach the right final state", async () => {
    await writeFile(ledger, "");
    await stacks.updateStackInstance({ name: "shop", params: { size: "l" }, replicas: { web: 1 } });
    await eventually("the update started", async () => (await lines()).length >= 1, { timeoutMs: 60_000 });
    (await runningWorker("shop"))?.kill("SIGKILL");
    const updated = await waitState("shop", StackInstanceState.READY);
    assert.deepEqual(
      updated.services.web?.targets.map((t) => t.infrastructureTarget),
      ["prod.brussels.z1"],
    );
    assertNoStepTwice(await lines());

    await writeFile(ledger, "");
    await stacks.deleteStackInstance({ name: "shop", wait: durationFromMs(1) });
    await eventually("the delete started", async () => (await lines()).length >= 1, { timeoutMs: 60_000 });
    const w = await runningWorker("shop");
    if (w && cluster.workers.filter((x) => x.child.exitCode === null && x.child.signalCode === null).length > 1) {
      w.kill("SIGKILL");
    }
    await waitState("shop", StackInstanceState.DELETED);
    const ls = await lines();
    assertNoStepTwice(ls);
    assert.equal(ls[0]?.split(" ").slice(0, 3).join(" "), "delete lb front");
    assert.equal(ls.at(-1)?.split(" ").slice(0, 3).join(" "), "delete network net");
  });
});
