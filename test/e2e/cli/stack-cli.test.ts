// The stack-instance commands end to end: the real `stackl` CLI against a real `stackl dev` (embedded store,
// in-process workers and the in-process agent of pool `common`), only through the public API. `plan` explains the
// placement of the STACKL fixture tree; a small estate whose functional requirements run `mock` and `shell` jobs on
// the dev agent is created, watched live, updated, retried, cancelled, re-applied from an original manifest
// (`apply -c`) and torn down.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { createStacklClients } from "../../../src/cli/client.js";
import { stacklTreeDir } from "../../fixtures/stackl-tree.js";
import { repoRoot, waitChildExit } from "../../support/tools.js";
import { CLI_TIMEOUT_MS, type CliResult, cli, type DevServer, spawnCli, startDev } from "./cli-harness.js";

const TREE = path.relative(repoRoot, stacklTreeDir);

/**
 * A lab estate run by the dev agent (agent `common`): `net` (mock, outputs a subnet) then `web` (vm: mock; app: a
 * shell command that sleeps `sleep` seconds and fails when `fail_app` is `yes`).
 */
const LAB_TREE = `
name: lab
type: environment
category: configs
params: {region: lab}
resources: {memory: 16GB}
tags: {env: lab}
---
name: rack
type: location
category: configs
---
name: r1
type: zone
category: configs
---
name: r2
type: zone
category: configs
---
name: tiny
type: environment
category: configs
resources: {memory: 1GB}
tags: {env: lab}
---
name: lab-estate
type: stack_infrastructure_template
category: configs
infrastructure_targets:
  - {environment: lab, location: rack, zone: r1}
  - {environment: lab, location: rack, zone: r2}
  - {environment: tiny, location: rack, zone: r1}
---
name: vm
type: functional_requirement
category: configs
invocation:
  generic:
    tool: mock
    mock: {outputs: {vm_ready: true}, sleep_ms: 200}
---
name: app
type: functional_requirement
category: configs
invocation:
  generic:
    tool: shell
    command: [sh, -c, 'echo "deploying $STACKL_SERVICE"; sleep "\${STACKL_PARAM_SLEEP:-0}"; test "\${STACKL_PARAM_FAIL_APP:-no}" != yes']
---
name: net
type: functional_requirement
category: configs
invocation:
  generic:
    tool: mock
    mock: {outputs: {subnet: 10.0.0.0/24}}
---
name: network
type: service
category: items
functional_requirements: [net]
---
name: webapp
type: service
category: items
functional_requirements: [vm, app]
resource_requirements: {memory: 4GB}
---
name: shopapp
type: stack_application_template
category: configs
services:
  - {name: net, service: network}
  - {name: web, service: webapp}
`;

/** The original `stackl apply -c` manifest format. */
const MANIFEST = `
stack_infrastructure_template: lab-estate
stack_application_template: shopapp
params:
  app_version: 2.4.1
  debug: yes
replicas:
  web: 2
tags:
  env: lab
services:
  - name: extra
    service: network
`;

/** Asserts the exit code, showing the output when it differs. */
function assertExit(result: CliResult, code: number): void {
  assert.equal(
    result.code,
    code,
    `exit ${result.code}, expected ${code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
  );
}

/** `STAGE SERVICE FR TARGETS STATUS` of every step row of a step table, as [service, fr, targets, status]. */
function stepRows(text: string): string[][] {
  const lines = text.split("\n");
  const start = lines.findIndex((l) => /^STAGE +SERVICE +FR +TARGETS +STATUS +JOB +ERROR$/.test(l));
  assert.ok(start >= 0, `a step table in:\n${text}`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 1)) {
    if (!/^(#\d+|\S+) +\S+ +\S+ +\S+ +\S+/.test(line) || line.startsWith("✓")) break;
    const [, service, fr, targets, status] = line.split(/ {2,}/);
    rows.push([service ?? "", fr ?? "", targets ?? "", (status ?? "").trim()]);
  }
  return rows;
}

describe("stackl stack-instance commands against stackl dev", () => {
  let dev: DevServer;
  let scratch: string;
  const stackl = (...args: string[]): Promise<CliResult> => cli(dev, args);

  before(async () => {
    dev = await startDev();
    scratch = await mkdtemp(path.join(tmpdir(), "stackl-stack-cli-"));
    await writeFile(path.join(scratch, "lab.yaml"), LAB_TREE);
    await writeFile(path.join(scratch, "shop.yaml"), MANIFEST);
    await writeFile(
      path.join(scratch, "broken.yaml"),
      "stack_application_template: shopapp\nreplicas: {web: two}\nstages: [{name: s}]\n",
    );
    assertExit(await stackl("apply", "-f", TREE), 0);
    assertExit(await stackl("apply", "-f", path.join(scratch, "lab.yaml")), 0);
  });
  after(async () => {
    await dev?.stop();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  /** The live-view tests need WatchStackInstance; fail loudly (never skip) when it does not stream. */
  async function needsWatch(_t: TestContext, name: string): Promise<boolean> {
    const { stackInstances } = createStacklClients({ server: dev.url });
    for await (const _ of stackInstances.watchStackInstance({ name }, { timeoutMs: 10_000 })) break;
    return true;
  }

  describe("plan", () => {
    it("explains the placement of the STACKL fixture tree: chosen targets, every rejection, the steps in order", async () => {
      const result = await stackl("plan", "--sat", "webshop", "--sit", "eu-platform");
      assertExit(result, 0);
      const out = result.stdout;
      assert.match(out, /^fulfilled: 4 services placed on 4 targets \(\d+ rejections below\)\n/);
      assert.match(out, /\nSERVICE +TARGET +RESULT +PHASE +POLICY +MESSAGE\n/);
      assert.match(out, /\ndb \(database\) +production\.ireland\.eu-west-1-a +chosen\n/);
      // The SAT policy keeps the database in Ireland: Frankfurt is rejected by it, with its message.
      assert.match(
        out,
        /\ndb \(database\) +production\.frankfurt\.eu-central-1-a +rejected +sat_policy +keep_in_location +\S.*\n/,
      );
      for (const alias of ["web", "lb \\(loadbalancer\\)", "monitoring"]) {
        assert.match(out, new RegExp(`\\n${alias} +\\S+ +chosen\\n`), alias);
      }
      assert.match(out, /\nSteps \(7, in order\)\n# +STAGE +SERVICE +FR +TARGETS +ACTION +NOTE\n1 +\S+ +db +linux +/);

      const json = await stackl("plan", "--sat", "webshop", "--sit", "eu-platform", "-o", "json");
      assertExit(json, 0);
      const plan = JSON.parse(json.stdout) as {
        fulfilled: boolean;
        services: { alias: string; targets?: string[]; rejections?: { phase: string }[] }[];
        steps: { service: string; functionalRequirement: string }[];
      };
      assert.equal(plan.fulfilled, true);
      assert.deepEqual(
        plan.services.map((s) => s.alias),
        ["db", "web", "lb", "monitoring"],
      );
      assert.deepEqual(
        plan.steps.slice(0, 2).map((s) => `${s.service}/${s.functionalRequirement}`),
        ["db/linux", "db/postgres"],
      );
    });

    it("exits 1 when nothing qualifies, naming the rule that rejected each target", async () => {
      const result = await stackl("plan", "--sat", "shopapp", "--sit", "lab-estate", "-t", "env=prod");
      assertExit(result, 1);
      assert.match(result.stdout, /^not fulfilled: /);
      assert.match(
        result.stdout,
        /\nnet \(network\) +lab\.rack\.r1 +rejected +orchestration +orchestration\.tags +.*"prod"/,
      );
    });

    it("bad arguments are usage errors (exit 2); unknown templates name the field", async () => {
      assertExit(await stackl("plan", "--sit", "lab-estate"), 2);
      const param = await stackl("plan", "--sat", "shopapp", "--sit", "lab-estate", "-p", "novalue");
      assertExit(param, 2);
      assert.match(param.stderr, /expected key=value, @file or a JSON object, got "novalue"/);
      assertExit(await stackl("plan", "--sat", "shopapp", "--sit", "lab-estate", "-r", "web=0"), 2);
      const missing = await stackl("plan", "--sat", "nosuch", "--sit", "lab-estate");
      assertExit(missing, 1);
      assert.match(missing.stderr, /spec\.stack_application_template: .*nosuch/);
    });
  });

  describe("a stack instance's life", () => {
    it("create instance --wait runs every step on the dev agent and prints them", async () => {
      const result = await stackl(
        "create",
        "instance",
        "shop",
        "--sat",
        "shopapp",
        "--sit",
        "lab-estate",
        "-r",
        "web=2",
        "-p",
        "app_version=2.4.1",
        "--wait",
        "2m",
      );
      assertExit(result, 0);
      assert.match(result.stdout, /\nState: +ready\n/);
      assert.deepEqual(stepRows(result.stdout), [
        ["net", "net", "lab.rack.r1", "ready"],
        ["web", "vm", "lab.rack.r1", "ready"],
        ["web", "vm", "lab.rack.r2", "ready"],
        ["web", "app", "lab.rack.r1", "ready"],
        ["web", "app", "lab.rack.r2", "ready"],
      ]);
      assert.match(result.stdout, /✓ stack instance shop is ready\n$/);
    });

    it("create refuses an existing name, and explains a refused placement with the plan", async () => {
      const again = await stackl("create", "instance", "shop", "--sat", "shopapp", "--sit", "lab-estate");
      assertExit(again, 1);
      assert.match(again.stderr, /already exists/);
      const refused = await stackl(
        "create",
        "instance",
        "nowhere",
        "--sat",
        "shopapp",
        "--sit",
        "lab-estate",
        "-t",
        "env=prod",
      );
      assertExit(refused, 1);
      assert.match(refused.stderr, /^error: placement failed: /m);
      assert.match(refused.stderr, /\nnot fulfilled: /);
      assert.match(refused.stderr, /orchestration\.tags/);
    });

    it("get instance shows state and steps; get instances lists it", async () => {
      const one = await stackl("get", "instance", "shop");
      assertExit(one, 0);
      assert.match(one.stdout, /^Name: +shop\nApplication: +shopapp\nInfrastructure: +lab-estate\nState: +ready\n/);
      assert.match(one.stdout, /\nServices: +net → lab\.rack\.r1\n +web → lab\.rack\.r1, lab\.rack\.r2\n/);
      assert.equal(stepRows(one.stdout).length, 5);
      const json = JSON.parse((await stackl("get", "instance", "shop", "-o", "json")).stdout) as {
        state: string;
        steps: unknown[];
      };
      assert.equal(json.state, "STACK_INSTANCE_STATE_READY");
      assert.equal(json.steps.length, 5);
      const list = await stackl("get", "instances");
      assertExit(list, 0);
      assert.match(
        list.stdout,
        /^NAME +APPLICATION +INFRASTRUCTURE +STATE +STEPS +GEN +AGE +REASON\nshop +shopapp +lab-estate +ready +5\/5 +1 +/,
      );
      assertExit(await stackl("get", "instance", "nosuch"), 1);
    });

    it("outputs shows what the jobs reported, and reports more for a service on a target", async () => {
      const shown = await stackl("outputs", "shop", "-o", "json");
      assertExit(shown, 0);
      const outputs = JSON.parse(shown.stdout) as {
        instance: Record<string, unknown>;
        services: Record<string, unknown>;
      };
      assert.deepEqual(outputs.instance, { subnet: "10.0.0.0/24", vm_ready: true });
      assert.deepEqual(outputs.services.net, { "lab.rack.r1": { subnet: "10.0.0.0/24" } });

      const ambiguous = await stackl("outputs", "shop", "--service", "web", "-p", "url=http://shop");
      assertExit(ambiguous, 2);
      assert.match(ambiguous.stderr, /runs on 2 targets \(lab\.rack\.r1, lab\.rack\.r2\); choose one with --target/);
      const reported = await stackl(
        "outputs",
        "shop",
        "--service",
        "web",
        "--target",
        "lab.rack.r2",
        "-p",
        "url=http://shop",
        "-p",
        "port=8080",
      );
      assertExit(reported, 0);
      assert.match(reported.stdout, /^reported 2 output\(s\) for web on lab\.rack\.r2\n/);
      assert.match(reported.stdout, /\nweb +lab\.rack\.r2 +port +8080\n/);
      const table = await stackl("outputs", "shop");
      assert.match(table.stdout, /\n\(instance\) +url +http:\/\/shop\n/);
    });

    it("update with a failing step exits 1 with the reason; retry after fixing the parameters succeeds", async () => {
      const failed = await stackl("update", "instance", "shop", "-p", "fail_app=yes", "--wait", "2m");
      assertExit(failed, 1);
      assert.match(failed.stdout, /\nState: +failed\n/);
      assert.deepEqual(
        stepRows(failed.stdout).filter((r) => r[3] !== "ready"),
        [
          ["web", "app", "lab.rack.r1", "failed"],
          ["web", "app", "lab.rack.r2", "failed"],
        ],
      );
      assert.match(failed.stderr, /^error: stack instance shop failed: .*web\/app/m);
      assert.match(
        failed.stderr,
        /\n {2}the job's log: stackl logs \S+\n {2}run the failed steps again: stackl retry instance shop -w\n$/,
      );

      const recorded = await stackl("update", "instance", "shop", "-p", "fail_app=no", "--disable-invocation");
      assertExit(recorded, 0);
      assert.match(recorded.stdout, /^updated stack instance shop without running any job/);

      const retried = await stackl("retry", "instance", "shop", "--wait", "2m");
      assertExit(retried, 0);
      assert.match(retried.stdout, /\nState: +ready\n/);
    });

    it("update adds and removes extra services (a removed one is torn down)", async () => {
      const added = await stackl("update", "instance", "shop", "--service", "extra=network", "--wait", "2m");
      assertExit(added, 0);
      assert.deepEqual(stepRows(added.stdout).at(-1), ["extra", "net", "lab.rack.r1", "ready"]);
      const refused = await stackl("update", "instance", "shop", "--remove-service", "web");
      assertExit(refused, 1);
      assert.match(refused.stderr, /web is a service of the application template/);
      const removed = await stackl("update", "instance", "shop", "--remove-service", "extra", "--wait", "2m");
      assertExit(removed, 0);
      assert.deepEqual(stepRows(removed.stdout)[0], ["extra", "net", "lab.rack.r1", "ready (delete)"]);
    });

    it("create -w shows the live view of the steps until the instance is ready", async (t) => {
      if (!(await needsWatch(t, "shop"))) return;
      const result = await stackl(
        "create",
        "instance",
        "live",
        "--sat",
        "shopapp",
        "--sit",
        "lab-estate",
        "-p",
        "sleep=1",
        "-w",
      );
      assertExit(result, 0);
      const out = result.stdout;
      assert.match(out, /^create of stack instance live started \(task \S+\)\n/);
      assert.match(out, /\n\d\d:\d\d:\d\d {2}live: \w+ \(generation 1, task \S+; 3 steps: /);
      assert.match(out, /\n\d\d:\d\d:\d\d {2}web\/app @ lab\.rack\.r1: running \(job \S+\)\n/);
      assert.match(out, /\n\d\d:\d\d:\d\d {2}web\/app @ lab\.rack\.r1: ready \(job \S+\)\n/);
      assert.match(out, /\n\d\d:\d\d:\d\d {2}live: ready\n3 steps: 3 ready\n✓ stack instance live is ready\n$/);
    });

    it("get instance -w follows a run started elsewhere; cancel instance stops it (exit 1)", async (t) => {
      if (!(await needsWatch(t, "shop"))) return;
      const started = await stackl("update", "instance", "live", "-p", "sleep=30");
      assertExit(started, 0);
      const live = spawnCli(dev, ["get", "instance", "live", "-w"]);
      try {
        // The step shows as running in the table printed for the run, or in a line of its own.
        await live.waitFor(/web\/app @ lab\.rack\.r1: running|\n\S+ +web +app +lab\.rack\.r1 +running /);
        const cancelled = await stackl("cancel", "instance", "live", "--wait", "30s");
        assertExit(cancelled, 0);
        assert.match(
          cancelled.stdout,
          /^run of stack instance live cancelled \(task \S+\)\nstack instance live: failed: cancelled\n$/,
        );
        assert.ok(await waitChildExit(live.child, CLI_TIMEOUT_MS), "get instance -w ends when the instance failed");
        assert.equal(live.child.exitCode, 1);
        assert.match(live.output(), /\n\d\d:\d\d:\d\d {2}live: failed: cancelled\n/);
      } finally {
        live.child.kill("SIGKILL");
      }
    });

    it("cancel instance without -w: the instance ends failed with reason cancelled", async () => {
      const started = await stackl(
        "create",
        "instance",
        "slow",
        "--sat",
        "shopapp",
        "--sit",
        "lab-estate",
        "-p",
        "sleep=30",
      );
      assertExit(started, 0);
      assert.match(
        started.stdout,
        /^create of stack instance slow started \(task \S+\)\nnet → lab\.rack\.r1\nweb → lab\.rack\.r1\n/,
      );
      // Wait until the shell step runs, then cancel it.
      const deadline = Date.now() + CLI_TIMEOUT_MS;
      for (;;) {
        const view = await stackl("get", "instance", "slow");
        if (stepRows(view.stdout).some((r) => r[1] === "app" && r[3] === "running")) break;
        assert.ok(Date.now() < deadline, `the app step never ran:\n${view.stdout}`);
        await new Promise((r) => setTimeout(r, 300));
      }
      const cancelled = await stackl("cancel", "instance", "slow", "--reason", "test", "--wait", "30s");
      assertExit(cancelled, 0);
      assert.match(cancelled.stdout, /\nstack instance slow: failed: cancelled\n$/);
      const again = await stackl("cancel", "instance", "slow");
      assertExit(again, 0);
      assert.match(again.stdout, /^run of stack instance slow cancelled \(task \S+\)\n$/, "idempotent");
    });

    it("delete instance --force --wait tears it down (exit 0); the record stays as deleted", async () => {
      assertExit(await stackl("update", "instance", "slow", "-p", "sleep=0", "--disable-invocation"), 0);
      const deleted = await stackl("delete", "instance", "slow", "--force", "--wait", "2m");
      assertExit(deleted, 0);
      assert.match(deleted.stdout, /\nState: +deleted\n/);
      assert.ok(
        stepRows(deleted.stdout).every((r) => (r[3] ?? "").endsWith("(delete)")),
        "teardown steps",
      );
      assert.deepEqual(
        stepRows(deleted.stdout).map((r) => `${r[0]}/${r[1]}`),
        ["web/app", "web/vm", "net/net"],
        "exact reverse order",
      );
      assertExit(await stackl("delete", "instance", "slow"), 1);
      const docOptions = await stackl("delete", "zone", "r1", "--force");
      assertExit(docOptions, 2);
      assert.match(docOptions.stderr, /--force applies only to stack instances/);
    });
  });

  describe("apply -c MANIFEST NAME (the original manifest)", () => {
    it("--dry-run plans it; the first apply creates the instance, the next one updates it", async () => {
      const manifest = path.join(scratch, "shop.yaml");
      const dry = await stackl("apply", "-c", manifest, "fromfile", "--dry-run");
      assertExit(dry, 0);
      assert.match(
        dry.stdout,
        /^dry run: stack instance fromfile would be created; nothing was changed\nfulfilled: 3 services placed on 4 targets/,
      );
      assertExit(await stackl("get", "instance", "fromfile"), 1);

      const created = await stackl("apply", "-c", manifest, "fromfile", "--wait", "2m");
      assertExit(created, 0);
      assert.deepEqual(
        stepRows(created.stdout).map((r) => `${r[0]}/${r[1]}@${r[2]}`),
        [
          "net/net@lab.rack.r1",
          "web/vm@lab.rack.r1",
          "web/vm@lab.rack.r2",
          "web/app@lab.rack.r1",
          "web/app@lab.rack.r2",
          "extra/net@lab.rack.r1",
        ],
      );
      const json = JSON.parse((await stackl("get", "instance", "fromfile", "-o", "json")).stdout) as {
        params: Record<string, unknown>;
        replicas: Record<string, number>;
        tags: Record<string, string>;
      };
      // PyYAML semantics of the original manifest: `yes` is a boolean, 2.4.1 a string.
      assert.deepEqual(json.params, { app_version: "2.4.1", debug: true });
      assert.deepEqual(json.replicas, { web: 2 });
      assert.deepEqual(json.tags, { env: "lab" });

      // Options override the manifest; scaling web down tears down the replica on the second target.
      const updated = await stackl(
        "apply",
        "-c",
        manifest,
        "fromfile",
        "-r",
        "web=1",
        "-p",
        "app_version=2.5.0",
        "--wait",
        "2m",
      );
      assertExit(updated, 0);
      assert.match(updated.stdout, /\nState: +ready\n/);
      assert.ok(
        stepRows(updated.stdout).some((r) => r[0] === "web" && r[2] === "lab.rack.r2" && r[3] === "ready (delete)"),
        updated.stdout,
      );
      const after = JSON.parse((await stackl("get", "instance", "fromfile", "-o", "json")).stdout) as {
        params: Record<string, unknown>;
      };
      assert.equal(after.params.app_version, "2.5.0");
    });

    it("refuses a broken manifest with field paths, sending nothing", async () => {
      const broken = path.join(scratch, "broken.yaml");
      const result = await stackl("apply", "-c", broken, "broken");
      assertExit(result, 1);
      assert.match(result.stderr, /^error: 2 problems in the manifest; nothing was sent:\n/m);
      assert.match(result.stderr, /broken\.yaml: replicas\.web: expected a positive integer, got string "two"\n/);
      assert.match(result.stderr, /broken\.yaml: stages\[0\]\.services: is required\n/);
      assertExit(await stackl("get", "instance", "broken"), 1);
      const noName = await stackl("apply", "-c", path.join(scratch, "shop.yaml"));
      assertExit(noName, 2);
      assert.match(noName.stderr, /name the stack instance/);
      const both = await stackl("apply", "-c", broken, "x", "-f", TREE);
      assertExit(both, 2);
    });

    it("apply -f still applies documents, and refuses instance options", async () => {
      const result = await stackl("apply", "-f", path.join(scratch, "lab.yaml"));
      assertExit(result, 0);
      assert.match(result.stdout, /documents applied: 0 created, 0 updated, \d+ unchanged\n$/);
      const mixed = await stackl("apply", "-f", path.join(scratch, "lab.yaml"), "-p", "a=1");
      assertExit(mixed, 2);
      assert.match(mixed.stderr, /-p goes only with -c MANIFEST/);
    });
  });
});
