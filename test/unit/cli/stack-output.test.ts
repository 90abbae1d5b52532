// How the stack-instance commands print: the plan (placement with every rejection, steps), the step table, instance
// details and lists, outputs, and the live view of `-w` (terminal redraw, change lines, exit codes) against a fake
// StackInstanceService/TaskService.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  PlanSchema,
  type StackInstance,
  StackInstanceSchema,
  StackInstanceState,
  type Step,
  StepSchema,
  StepStatus,
} from "../../../gen/stackl/v1/stack_instances_pb.js";
import { type Task, TaskSchema, TaskState } from "../../../gen/stackl/v1/tasks_pb.js";
import type { StacklClients } from "../../../src/cli/client.js";
import { followInstance, screenRows } from "../../../src/cli/commands/instances.js";
import type { CommandContext } from "../../../src/cli/output/command-context.js";
import {
  changeLines,
  instanceDetails,
  instancesTable,
  instanceView,
  isInstanceTerminal,
  liveFrame,
  outputsObject,
  outputsTable,
  planText,
  stageLabeler,
  stepLine,
  stepsSummary,
  stepsTable,
} from "../../../src/cli/output/stack-instances.js";
import { createStyle, PLAIN, stripAnsi } from "../../../src/cli/output/style.js";

const NOW = Date.parse("2024-05-01T12:00:00Z");
const T1 = "production.ireland.eu-west-1-a";
const T2 = "production.ireland.eu-west-1-b";
const LAB = "development.lab.lab-rack-1";

function step(init: MessageInitShape<typeof StepSchema>): Step {
  return create(StepSchema, { action: "create", status: StepStatus.PENDING, ...init });
}

/** The webshop stack: data [db], application [web, monitoring], edge [lb]. */
const STAGES = [
  { name: "data", services: ["db"] },
  { name: "application", services: ["web", "monitoring"] },
  { name: "edge", services: ["lb"] },
];

type StepExtra = { jobId?: string; errorMessage?: string; skipReason?: string };

function steps(statuses: Partial<Record<string, StepStatus>> = {}, extra: Partial<Record<string, StepExtra>> = {}) {
  const defs: [string, string, string, string[], number][] = [
    ["s1", "db", "linux", [T1], 0],
    ["s2", "db", "postgres", [T1], 0],
    ["s3", "web", "nginx", [T1, T2], 1],
    ["s4", "monitoring", "prometheus", [LAB], 1],
    ["s5", "lb", "haproxy_config", [LAB], 2],
  ];
  return defs.map(([id, service, fr, targets, stageIndex]) =>
    step({
      id,
      service,
      functionalRequirement: fr,
      infrastructureTargets: targets,
      stageIndex,
      status: statuses[id] ?? StepStatus.PENDING,
      ...(extra[id] ?? {}),
    }),
  );
}

function instance(init: MessageInitShape<typeof StackInstanceSchema> = {}): StackInstance {
  return create(StackInstanceSchema, {
    name: "shop",
    stackApplicationTemplate: "webshop",
    stackInfrastructureTemplate: "eu-platform",
    state: StackInstanceState.PENDING,
    generation: 1n,
    taskId: "task-1",
    stages: STAGES,
    steps: steps(),
    serviceOrder: ["db", "web", "monitoring", "lb"],
    services: {
      db: { targets: [{ infrastructureTarget: T1, service: "database" }] },
      web: { targets: [{ infrastructureTarget: T1 }, { infrastructureTarget: T2 }] },
    },
    createTime: timestampFromMs(NOW - 3 * 60_000),
    updateTime: timestampFromMs(NOW - 60_000),
    ...init,
  });
}

describe("step table", () => {
  it("prints STAGE, SERVICE, FR, TARGETS, STATUS, JOB, ERROR in execution order", () => {
    const list = steps(
      { s1: StepStatus.READY, s2: StepStatus.FAILED, s3: StepStatus.SKIPPED, s4: StepStatus.RUNNING },
      {
        s1: { jobId: "job-1" },
        s2: { jobId: "job-2", errorMessage: "exit status 2" },
        s3: { skipReason: "an earlier stage failed" },
        s4: { jobId: "job-4" },
      },
    );
    assert.equal(
      stepsTable(list, { stages: STAGES }),
      [
        "STAGE         SERVICE      FR               TARGETS                                                         STATUS    JOB     ERROR",
        "data          db           linux            production.ireland.eu-west-1-a                                  ready     job-1",
        "data          db           postgres         production.ireland.eu-west-1-a                                  failed    job-2   exit status 2",
        "application   web          nginx            production.ireland.eu-west-1-a,production.ireland.eu-west-1-b   skipped   -       an earlier stage failed",
        "application   monitoring   prometheus       development.lab.lab-rack-1                                      running   job-4",
        "edge          lb           haproxy_config   development.lab.lab-rack-1                                      pending   -",
        "",
      ].join("\n"),
    );
  });

  it("names stages only where the step really runs at that stage's position; #N otherwise", () => {
    const label = stageLabeler(STAGES, steps());
    assert.equal(label({ service: "db", stageIndex: 0, action: "create" }), "data");
    assert.equal(label({ service: "monitoring", stageIndex: 1, action: "create" }), "application");
    // A server that ran monitoring in a stage of its own: the name would lie, so the position is shown.
    assert.equal(label({ service: "monitoring", stageIndex: 3, action: "create" }), "#4");
    // Teardown runs the stages in reverse.
    assert.equal(label({ service: "lb", stageIndex: 0, action: "delete" }), "edge");
    assert.equal(label({ service: "db", stageIndex: 2, action: "delete" }), "data");
    // No stages: every service is its own stage.
    assert.equal(stageLabeler([], steps())({ service: "web", stageIndex: 1, action: "create" }), "#2");
    // Services listed in no stage run last, in a stage of their own; stages without any step are dropped.
    const withExtra = [...steps(), step({ service: "cache", functionalRequirement: "redis", stageIndex: 3 })];
    const extraLabel = stageLabeler([{ name: "unused", services: ["nothing"] }, ...STAGES], withExtra);
    assert.equal(extraLabel({ service: "db", stageIndex: 0, action: "create" }), "data");
    assert.equal(extraLabel({ service: "cache", stageIndex: 3, action: "create" }), "#4");
  });

  it("colors statuses on a terminal, aligned by visible width", () => {
    const style = createStyle(true);
    const list = steps({ s1: StepStatus.READY, s2: StepStatus.FAILED }, { s2: { errorMessage: "boom" } });
    const colored = stepsTable(list, { stages: STAGES, style });
    assert.ok(colored.includes("\u001b[32mready\u001b[39m"));
    assert.ok(colored.includes("\u001b[31mboom\u001b[39m"));
    assert.equal(stripAnsi(colored), stepsTable(list, { stages: STAGES }));
  });

  it("summarises step statuses", () => {
    assert.equal(stepsSummary(steps()), "5 steps: 5 pending");
    assert.equal(
      stepsSummary(
        steps({ s1: StepStatus.READY, s2: StepStatus.READY, s3: StepStatus.RUNNING, s5: StepStatus.FAILED }),
      ),
      "5 steps: 2 ready, 1 running, 1 pending, 1 failed",
    );
    assert.equal(stepsSummary([]), "0 steps");
  });
});

describe("instances", () => {
  it("shows one instance: details with state and reason, then its steps", () => {
    const failed = instance({
      state: StackInstanceState.FAILED,
      reason: "db/postgres on production.ireland.eu-west-1-a: exit status 2",
      steps: steps({ s1: StepStatus.READY, s2: StepStatus.FAILED }, { s2: { errorMessage: "exit status 2" } }),
    });
    const text = instanceView(failed, NOW);
    assert.match(
      text,
      new RegExp(
        [
          "^Name: +shop",
          "Application: +webshop",
          "Infrastructure: +eu-platform",
          "State: +failed",
          "Reason: +db/postgres on production.ireland.eu-west-1-a: exit status 2",
          "Generation: +1",
          "Task: +task-1",
          "Created: +2024-05-01T11:57:00Z \\(3m ago\\)",
          "Updated: +2024-05-01T11:59:00Z \\(1m ago\\)",
          "Services: +db → production.ireland.eu-west-1-a",
          " +web → production.ireland.eu-west-1-a, production.ireland.eu-west-1-b",
          "Steps: +5 steps: 1 ready, 3 pending, 1 failed",
          "",
          "STAGE +SERVICE +FR +TARGETS +STATUS +JOB +ERROR\n",
        ].join("\n"),
      ),
    );
    assert.equal(instanceDetails(instance({ steps: [] }), NOW).includes("Steps:"), false);
  });

  it("lists instances with STATE, STEPS done/total, GEN, AGE, REASON", () => {
    const ready = instance({
      name: "a",
      state: StackInstanceState.READY,
      steps: steps({
        s1: StepStatus.READY,
        s2: StepStatus.READY,
        s3: StepStatus.READY,
        s4: StepStatus.SKIPPED,
        s5: StepStatus.READY,
      }),
    });
    const failed = instance({ name: "b", state: StackInstanceState.FAILED, reason: "cancelled", generation: 3n });
    assert.equal(
      instancesTable([ready, failed], NOW),
      [
        "NAME   APPLICATION   INFRASTRUCTURE   STATE    STEPS   GEN   AGE   REASON",
        "a      webshop       eu-platform      ready      5/5     1    3m",
        "b      webshop       eu-platform      failed     0/5     3    3m   cancelled",
        "",
      ].join("\n"),
    );
  });

  it("knows the terminal states", () => {
    assert.equal(isInstanceTerminal(StackInstanceState.READY), true);
    assert.equal(isInstanceTerminal(StackInstanceState.FAILED), true);
    assert.equal(isInstanceTerminal(StackInstanceState.DELETED), true);
    assert.equal(isInstanceTerminal(StackInstanceState.DEPLOYING), false);
    assert.equal(isInstanceTerminal(StackInstanceState.DELETING), false);
    assert.equal(isInstanceTerminal(StackInstanceState.PENDING), false);
  });

  it("prints outputs of the instance and per service and target", () => {
    const withOutputs = instance({
      instanceOutputs: { db_host: "10.0.0.5", ports: [5432] },
      services: {
        db: { targets: [{ infrastructureTarget: T1, outputs: { db_host: "10.0.0.5" } }] },
        web: { targets: [{ infrastructureTarget: T1 }, { infrastructureTarget: T2, outputs: { url: "https://b" } }] },
      },
    });
    assert.deepEqual(outputsObject(withOutputs), {
      instance: { db_host: "10.0.0.5", ports: [5432] },
      services: { db: { [T1]: { db_host: "10.0.0.5" } }, web: { [T2]: { url: "https://b" } } },
    });
    assert.equal(
      outputsTable(withOutputs),
      [
        "SERVICE      TARGET                           KEY       VALUE",
        "(instance)                                    db_host   10.0.0.5",
        "(instance)                                    ports     [5432]",
        "db           production.ireland.eu-west-1-a   db_host   10.0.0.5",
        "web          production.ireland.eu-west-1-b   url       https://b",
        "",
      ].join("\n"),
    );
    assert.equal(outputsTable(instance({ services: {} })), "");
  });
});

describe("plans", () => {
  const plan = create(PlanSchema, {
    fulfilled: true,
    services: [
      {
        alias: "db",
        service: "database",
        targets: [T1],
        rejections: [
          { target: LAB, phase: "orchestration", policy: "orchestration.resources", message: "memory 4GB < 8GB" },
          { target: T2, phase: "sat_policy", policy: "keep_in_location", message: "not in ireland-a" },
        ],
      },
      { alias: "web", service: "web", targets: [T1, T2] },
    ],
    steps: [
      step({ service: "db", functionalRequirement: "linux", infrastructureTargets: [T1], stageIndex: 0 }),
      step({
        service: "web",
        functionalRequirement: "nginx",
        infrastructureTargets: [T1],
        stageIndex: 1,
        status: StepStatus.SKIPPED,
        skipReason: "filtered out by a service policy",
      }),
    ],
  });

  it("explains the placement (chosen targets and every rejection) and lists the steps in order", () => {
    assert.equal(
      planText(plan, { stages: STAGES }),
      [
        "fulfilled: 2 services placed on 3 targets (2 rejections below)",
        "",
        "Placement",
        "SERVICE         TARGET                           RESULT     PHASE           POLICY                    MESSAGE",
        "db (database)   production.ireland.eu-west-1-a   chosen",
        "db (database)   development.lab.lab-rack-1       rejected   orchestration   orchestration.resources   memory 4GB < 8GB",
        "db (database)   production.ireland.eu-west-1-b   rejected   sat_policy      keep_in_location          not in ireland-a",
        "web             production.ireland.eu-west-1-a   chosen",
        "web             production.ireland.eu-west-1-b   chosen",
        "",
        "Steps (2, in order)",
        "#   STAGE         SERVICE   FR      TARGETS                          ACTION   NOTE",
        "1   data          db        linux   production.ireland.eu-west-1-a   create",
        "2   application   web       nginx   production.ireland.eu-west-1-a   create   skipped: filtered out by a service policy",
        "",
      ].join("\n"),
    );
  });

  it("says why a plan is not fulfilled, and which service found no target", () => {
    const refused = create(PlanSchema, {
      fulfilled: false,
      message: "Could not find a target for services {db}",
      services: [
        {
          alias: "db",
          service: "db",
          rejections: [{ target: LAB, phase: "orchestration", policy: "orchestration.tags", message: "environment" }],
        },
        { alias: "cache", service: "redis" },
      ],
    });
    const text = planText(refused);
    assert.match(text, /^not fulfilled: Could not find a target for services \{db\}\n/);
    assert.match(text, /\ncache \(redis\) +\(none\) +rejected +no target qualifies\n/);
    assert.doesNotMatch(text, /\ndb +\(none\)/, "db's rejections explain it");
    assert.match(
      text,
      /\ndb +development\.lab\.lab-rack-1 +rejected +orchestration +orchestration\.tags +environment\n/,
    );
    assert.equal(planText(create(PlanSchema, { fulfilled: false })), "not fulfilled\n");
  });
});

describe("live view lines", () => {
  it("reports a new run once, then state changes and each step that changed", () => {
    const first = instance();
    assert.deepEqual(changeLines(undefined, first), ["shop: pending (generation 1, task task-1; 5 steps: 5 pending)"]);
    const deploying = instance({
      state: StackInstanceState.DEPLOYING,
      steps: steps({ s1: StepStatus.RUNNING }, { s1: { jobId: "job-1" } }),
    });
    assert.deepEqual(changeLines(first, deploying), [
      "shop: deploying",
      "db/linux @ production.ireland.eu-west-1-a: running (job job-1)",
    ]);
    assert.deepEqual(changeLines(deploying, deploying), []);
    const failed = instance({
      state: StackInstanceState.FAILED,
      reason: "db/linux: exit status 1",
      steps: steps(
        { s1: StepStatus.FAILED, s2: StepStatus.SKIPPED },
        {
          s1: { jobId: "job-1", errorMessage: "exit status 1" },
          s2: { skipReason: "an earlier functional requirement failed" },
        },
      ),
    });
    assert.deepEqual(changeLines(deploying, failed), [
      "shop: failed: db/linux: exit status 1",
      "db/linux @ production.ireland.eu-west-1-a: failed: exit status 1 (job job-1)",
      "db/postgres @ production.ireland.eu-west-1-a: skipped: an earlier functional requirement failed",
    ]);
    const next = instance({ generation: 2n, taskId: "task-2", state: StackInstanceState.PENDING });
    assert.deepEqual(changeLines(failed, next), ["shop: pending (generation 2, task task-2; 5 steps: 5 pending)"]);
  });

  it("marks teardown steps", () => {
    const s = step({
      service: "db",
      functionalRequirement: "linux",
      infrastructureTargets: [T1],
      action: "delete",
      status: StepStatus.READY,
    });
    assert.equal(stepLine(s), "db/linux @ production.ireland.eu-west-1-a (delete): ready");
  });

  it("draws a frame: header with state, the step table, the counts", () => {
    const frame = liveFrame(instance({ state: StackInstanceState.DEPLOYING }), { now: NOW, style: PLAIN });
    const lines = frame.split("\n");
    assert.match(lines[0] ?? "", /^stack instance shop {3}deploying {3}generation 1, task task-1 {3}\d\d:\d\d:\d\d$/);
    assert.equal(lines[1], "");
    assert.match(lines[2] ?? "", /^STAGE +SERVICE +FR +TARGETS +STATUS +JOB +ERROR$/);
    assert.equal(lines.at(-2), "5 steps: 5 pending");
    assert.equal(lines.at(-1), "");
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// followInstance against fakes

interface Fake {
  ctx: CommandContext;
  out(): string;
  err(): string;
}

/** Yields `updates`, then holds the stream open until aborted (as the server does). */
function stream<T>(updates: readonly T[], signal: AbortSignal | undefined, delayMs = 1): AsyncIterable<T> {
  return (async function* () {
    for (const u of updates) {
      await new Promise((r) => setTimeout(r, delayMs));
      yield u;
    }
    await new Promise((_resolve, reject) => {
      if (signal?.aborted) reject(signal.reason);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  })();
}

function fake(opts: { tty?: boolean; updates: StackInstance[]; taskUpdates?: Task[]; get?: StackInstance }): Fake {
  let out = "";
  let err = "";
  const abort = new AbortController();
  const clients = {
    stackInstances: {
      watchStackInstance: (_req: unknown, o: { signal?: AbortSignal }) =>
        stream(
          opts.updates.map((instance) => ({ instance })),
          o.signal,
        ),
      getStackInstance: async () => ({ instance: opts.get ?? opts.updates.at(-1) }),
    },
    tasks: {
      watchTask: (_req: unknown, o: { signal?: AbortSignal }) =>
        stream(
          (opts.taskUpdates ?? []).map((task) => ({ task })),
          o.signal,
          5,
        ),
    },
  } as unknown as StacklClients;
  const ctx: CommandContext = {
    clients,
    server: "http://test",
    out: { write: () => true, isTTY: opts.tty === true, columns: 200, ...(opts.tty ? { rows: 200 } : {}) },
    err: { write: () => true },
    style: PLAIN,
    errStyle: PLAIN,
    signal: abort.signal,
    env: {},
    now: () => NOW,
    print: (text) => {
      out += text;
    },
    warn: (text) => {
      err += text;
    },
  };
  return { ctx, out: () => out, err: () => err };
}

const running = (): StackInstance =>
  instance({
    state: StackInstanceState.DEPLOYING,
    steps: steps({ s1: StepStatus.RUNNING }, { s1: { jobId: "job-1" } }),
  });
const allReady = (): StackInstance =>
  instance({
    state: StackInstanceState.READY,
    steps: steps({
      s1: StepStatus.READY,
      s2: StepStatus.READY,
      s3: StepStatus.READY,
      s4: StepStatus.READY,
      s5: StepStatus.READY,
    }),
  });

describe("live view (followInstance)", () => {
  it("not on a terminal: the plan table once, a line per change, exit 0 when ready", async () => {
    const f = fake({ updates: [instance(), running(), allReady()] });
    const code = await followInstance(f.ctx, "shop", { output: "table", taskId: "task-1" });
    assert.equal(code, 0);
    const out = f.out();
    assert.match(out, /^\d\d:\d\d:\d\d {2}shop: pending \(generation 1, task task-1; 5 steps: 5 pending\)\n/);
    assert.equal(out.match(/^STAGE +SERVICE/gm)?.length, 1, "the step table is printed once");
    assert.match(
      out,
      /\n\d\d:\d\d:\d\d {2}shop: deploying\n\d\d:\d\d:\d\d {2}db\/linux @ production\.ireland\.eu-west-1-a: running \(job job-1\)\n/,
    );
    assert.match(out, /\n\d\d:\d\d:\d\d {2}shop: ready\n/);
    assert.match(out, /5 steps: 5 ready\n✓ stack instance shop is ready\n$/);
    assert.equal(f.err(), "");
  });

  it("exit 1 when the instance failed, pointing at the job's log and at retry", async () => {
    const failed = instance({
      state: StackInstanceState.FAILED,
      reason: "db/linux: exit status 1",
      steps: steps({ s1: StepStatus.FAILED }, { s1: { jobId: "job-1", errorMessage: "exit status 1" } }),
    });
    const f = fake({ updates: [running(), failed] });
    assert.equal(await followInstance(f.ctx, "shop", { output: "table", taskId: "task-1" }), 1);
    assert.match(f.out(), /db\/linux @ production\.ireland\.eu-west-1-a: failed: exit status 1 \(job job-1\)\n/);
    assert.equal(
      f.err(),
      "error: stack instance shop failed: db/linux: exit status 1\n" +
        "  the job's log: stackl logs job-1\n" +
        "  run the failed steps again: stackl retry instance shop -w\n",
    );
  });

  it("exit 0 when deleted; a forced delete's failures are a warning", async () => {
    const f = fake({
      updates: [
        instance({ state: StackInstanceState.DELETED, reason: "force-deleted; failed: db/linux: exit status 1" }),
      ],
    });
    assert.equal(await followInstance(f.ctx, "shop", { output: "table" }), 0);
    assert.match(f.out(), /stack instance shop is deleted\n$/);
    assert.equal(f.err(), "warning: force-deleted; failed: db/linux: exit status 1\n");
  });

  it("on a terminal: redraws the frame in place on every change", async () => {
    const f = fake({ tty: true, updates: [instance(), running(), allReady()] });
    assert.equal(await followInstance(f.ctx, "shop", { output: "table", taskId: "task-1" }), 0);
    const out = f.out();
    const firstFrame = liveFrame(instance(), { now: NOW, style: PLAIN });
    assert.ok(out.startsWith(firstFrame), "the first frame is drawn as is");
    const height = firstFrame.split("\n").length - 1;
    assert.equal(out.split(`\u001b[${height}F\u001b[J`).length - 1, 2, "two redraws, each over the previous frame");
    assert.match(out, /stack instance shop {3}ready/);
    assert.match(out, /✓ stack instance shop is ready\n$/);
  });

  it("-o json: one JSON line per change", async () => {
    const f = fake({ updates: [instance(), allReady()] });
    assert.equal(await followInstance(f.ctx, "shop", { output: "json", taskId: "task-1" }), 0);
    const lines = f.out().trim().split("\n");
    assert.equal(lines.length, 2);
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { state: string }).state),
      ["STACK_INSTANCE_STATE_PENDING", "STACK_INSTANCE_STATE_READY"],
    );
  });

  it("follows a newer run that superseded the one it was asked to follow", async () => {
    const newer = (state: StackInstanceState): StackInstance =>
      instance({
        state,
        generation: 2n,
        taskId: "task-2",
        steps: state === StackInstanceState.READY ? allReady().steps : steps(),
      });
    const f = fake({
      updates: [running(), newer(StackInstanceState.PENDING), newer(StackInstanceState.READY)],
    });
    assert.equal(await followInstance(f.ctx, "shop", { output: "table", taskId: "task-1" }), 0);
    assert.match(f.out(), /a newer request superseded this run; following task task-2\n/);
    assert.match(f.out(), /shop: pending \(generation 2, task task-2; 5 steps: 5 pending\)/);
  });

  it("stops when the run's task ended but the instance never settled (exit 1, saying so)", async () => {
    const ended = create(TaskSchema, {
      id: "task-1",
      state: TaskState.FAILED,
      error: { code: "internal", message: "handler crashed" },
    });
    const f = fake({ updates: [running()], taskUpdates: [ended] });
    assert.equal(await followInstance(f.ctx, "shop", { output: "table", taskId: "task-1", settleMs: 10 }), 1);
    assert.equal(
      f.err(),
      "error: the run's task task-1 ended (failed: internal: handler crashed) but stack instance shop is still deploying\n",
    );
  });

  it("stops after --wait (exit 1)", async () => {
    const f = fake({ updates: [running()] });
    assert.equal(await followInstance(f.ctx, "shop", { output: "table", taskId: "task-1", timeoutMs: 50 }), 1);
    assert.match(
      f.err(),
      /^error: stack instance shop is still deploying after 50ms; follow it with: stackl get instance shop -w\n$/,
    );
  });

  it("counts the terminal rows of a frame, wrapped lines included (to redraw over it)", () => {
    assert.equal(screenRows("a\nb\n", undefined), 2);
    assert.equal(screenRows("a\n\nb\n", 80), 3);
    assert.equal(screenRows(`${"x".repeat(100)}\nb\n`, 40), 4);
    assert.equal(screenRows(`${createStyle(true).red("x".repeat(40))}\n`, 40), 1, "colors take no room");
  });

  it("an instance already settled ends the view at once with its exit code", async () => {
    const f = fake({ updates: [instance({ state: StackInstanceState.FAILED, reason: "cancelled" })] });
    assert.equal(await followInstance(f.ctx, "shop", { output: "table" }), 1);
    assert.match(f.err(), /^error: stack instance shop failed: cancelled\n/);
  });
});
