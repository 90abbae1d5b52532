// The `stackl` client commands end to end: the real CLI process against a real `stackl dev` process (embedded
// PGlite store, in-process bus and workers), talking only through the public API.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { type Document, DocumentSchema } from "../../../gen/stackl/v1/documents_pb.js";
import { sameContent } from "../../../src/domain/canonical-json.js";
import { kindOf } from "../../../src/domain/document-kinds.js";
import { parseDocumentText } from "../../../src/domain/stackl-format.js";
import { loadStacklTree, stacklTreeDir } from "../../fixtures/stackl-tree.js";
import { repoRoot, waitChildExit } from "../../support/tools.js";
import { CLI_TIMEOUT_MS, type CliResult, cli, type DevServer, spawnCli, startDev } from "./cli-harness.js";

/** The document without what the server adds to policy templates on apply (the bundle compiled by opa). */
function withoutCompiled(doc: Document): Document {
  if (doc.spec.case === "policyTemplate") {
    doc.spec.value.bundle = new Uint8Array(0);
    doc.spec.value.bundleSha256 = "";
    doc.spec.value.entrypoints = [];
  }
  return doc;
}

const TREE = path.relative(repoRoot, stacklTreeDir);
const treeDocs = (): Document[] =>
  loadStacklTree().map((p) => {
    assert.ok(p.doc, `${p.path} parses`);
    return p.doc;
  });
const key = (doc: Document): string => `${kindOf(doc)}/${doc.meta?.name}`;

/** Asserts the exit code, showing the output when it differs. */
function assertExit(result: CliResult, code: number): void {
  assert.equal(
    result.code,
    code,
    `exit ${result.code}, expected ${code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
  );
}

describe("stackl client commands against stackl dev", () => {
  let dev: DevServer;
  let scratch: string;
  const stackl = (...args: string[]): Promise<CliResult> => cli(dev, args);

  before(async () => {
    dev = await startDev();
    scratch = await mkdtemp(path.join(tmpdir(), "stackl-cli-files-"));
  });
  after(async () => {
    await dev?.stop();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  describe("documents", () => {
    it("apply -f DIR writes the STACKL fixture tree in one batch and prints every document", async () => {
      const docs = treeDocs();
      const result = await stackl("apply", "-f", TREE);
      assertExit(result, 0);
      for (const doc of docs) {
        assert.match(result.stdout, new RegExp(`^created +${key(doc)} +\\(revision 1\\) +${TREE}/`, "m"));
      }
      assert.match(
        result.stdout,
        new RegExp(`^${docs.length} documents applied: ${docs.length} created, 0 updated, 0 unchanged$`, "m"),
      );
    });

    it("get reads every document back equal, in the STACKL and the native shape", async () => {
      const expected = new Map(treeDocs().map((d) => [key(d), d]));

      const stacklShape = await stackl("get", "all", "-o", "yaml", "--format", "stackl");
      assertExit(stacklShape, 0);
      const parsed = parseDocumentText(stacklShape.stdout, "get.yaml");
      assert.equal(parsed.length, expected.size);
      for (const p of parsed) {
        assert.deepEqual(p.violations, [], p.path);
        assert.ok(p.doc);
        const want = expected.get(key(p.doc));
        assert.ok(want && sameContent(withoutCompiled(p.doc), want), `${key(p.doc)} reads back equal (STACKL shape)`);
      }

      const native = await stackl("get", "all", "-o", "json");
      assertExit(native, 0);
      const list = JSON.parse(native.stdout) as { documents: JsonValue[] };
      assert.equal(list.documents.length, expected.size);
      for (const json of list.documents) {
        const doc = fromJson(DocumentSchema, json);
        const want = expected.get(key(doc));
        assert.ok(want && sameContent(withoutCompiled(doc), want), `${key(doc)} reads back equal (native JSON)`);
        assert.equal(doc.meta?.revision, 1n);
      }
    });

    it("get KIND lists as a table per kind (aliases accepted), and one document as YAML", async () => {
      const byKind = new Map<string, Document[]>();
      for (const doc of treeDocs()) byKind.set(kindOf(doc) ?? "", [...(byKind.get(kindOf(doc) ?? "") ?? []), doc]);
      for (const [kind, docs] of byKind) {
        const result = await stackl("get", kind);
        assertExit(result, 0);
        const [header, ...rows] = result.stdout.trimEnd().split("\n");
        assert.match(header ?? "", /^NAME +REVISION +UPDATED +LABELS/);
        assert.deepEqual(rows.map((r) => r.split(/\s+/)[0]).sort(), docs.map((d) => d.meta?.name).sort());
      }
      const one = await stackl("get", "svc", "web");
      assertExit(one, 0);
      assert.match(one.stdout, /^meta:\n {2}name: web\n/);
      assert.match(one.stdout, /\nservice:\n {2}functional_requirements:\n {4}- linux\n {4}- nginx\n/);
    });

    it("get sit shows the computed targets: a count in the list, the merged targets for one SIT", async () => {
      const list = await stackl("get", "sit");
      assertExit(list, 0);
      assert.match(list.stdout, /^NAME +REVISION +UPDATED +LABELS +TARGETS\neu-platform +1 +\S+ +- +4\n$/);
      const table = await stackl("get", "sit", "eu-platform", "-o", "table");
      assertExit(table, 0);
      assert.match(
        table.stdout,
        /\nproduction\.ireland\.eu-west-1-b +aws +prod-agents-b +az=b,environment=production,region=eu-west,tier=platinum\n/,
      );
      const json = await stackl("get", "sit", "eu-platform", "-o", "json");
      const sit = fromJson(DocumentSchema, JSON.parse(json.stdout) as JsonValue);
      assert.equal(sit.spec.case, "stackInfrastructureTemplate");
      const targets = sit.spec.case === "stackInfrastructureTemplate" ? sit.spec.value.targets : [];
      assert.deepEqual(
        targets.map((t) => [t.key, t.cloudProvider, t.agent]),
        [
          ["development.lab.lab-rack-1", "vmw", "lab-agent"],
          ["production.frankfurt.eu-central-1-a", "aws", "frankfurt-agents"],
          ["production.ireland.eu-west-1-a", "aws", "prod-agents"],
          ["production.ireland.eu-west-1-b", "aws", "prod-agents-b"],
        ],
      );
    });

    it("re-applying the tree leaves every document unchanged", async () => {
      const n = treeDocs().length;
      const result = await stackl("apply", "-f", TREE);
      assertExit(result, 0);
      assert.match(result.stdout, new RegExp(`^${n} documents applied: 0 created, 0 updated, ${n} unchanged$`, "m"));
      assert.doesNotMatch(result.stdout, /^(created|updated) /m);
    });

    it("an invalid batch fails naming the file, document and field, and writes nothing", async () => {
      const dir = path.join(scratch, "invalid");
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, "a-zone.yaml"), "name: brand-new-zone\ntype: zone\ncategory: configs\n");
      await writeFile(
        path.join(dir, "b-services.yaml"),
        [
          "name: shop-api",
          "type: service",
          "functional_requirements: [linux]",
          "---",
          "name: broken-api",
          "type: service",
          "functional_requirements: [linux, does-not-exist]",
          "",
        ].join("\n"),
      );
      const result = await stackl("apply", "-f", dir);
      assertExit(result, 1);
      assert.match(
        result.stderr,
        /b-services\.yaml#2: functional_requirements\[1\]: references functional_requirement "does-not-exist", which does not exist/,
      );
      assert.match(result.stderr, /nothing was written/);
      assert.equal(result.stdout, "");
      for (const [kind, name] of [
        ["zone", "brand-new-zone"],
        ["service", "shop-api"],
      ] as const) {
        const get = await stackl("get", kind, name);
        assertExit(get, 1);
        assert.match(get.stderr, /not found/);
      }
    });

    it("a document that does not parse is reported locally, before anything is sent", async () => {
      const file = path.join(scratch, "bad-types.yaml");
      await writeFile(file, "name: typo-zone\ntype: zone\nparams: [not, a, mapping]\n---\nname: fine\ntype: zone\n");
      const result = await stackl("apply", "-f", file, "-f", path.join(scratch, "missing.yaml"));
      assertExit(result, 1);
      assert.match(result.stderr, /bad-types\.yaml#1: params: expected a mapping, not a list/);
      assert.match(result.stderr, /missing\.yaml: no such file or directory/);
      assert.match(result.stderr, /nothing was sent/);
      assertExit(await stackl("get", "zone", "fine"), 1);
    });

    it("more documents than one atomic batch holds are refused before anything is sent", async () => {
      const file = path.join(scratch, "too-many.yaml");
      const zones = Array.from({ length: 1001 }, (_, i) => `name: bulk-zone-${i}\ntype: zone\n`);
      await writeFile(file, zones.join("---\n"));
      const result = await stackl("apply", "-f", file);
      assertExit(result, 1);
      assert.match(result.stderr, /1001 documents are more than one atomic batch holds \(1000\); nothing was sent/);
      assertExit(await stackl("get", "zone", "bulk-zone-0"), 1);
    });

    it("delete of a referenced document is refused and lists the referrers", async () => {
      const result = await stackl("delete", "fr", "linux");
      assertExit(result, 1);
      assert.match(result.stderr, /functional_requirement "linux" is still referenced by:/);
      for (const service of ["database", "loadbalancer", "web"]) {
        assert.match(
          result.stderr,
          new RegExp(`^ {2}service/${service} +at service\\.functional_requirements\\[0\\]$`, "m"),
        );
      }
      assertExit(await stackl("get", "fr", "linux"), 0);
    });

    it("edit applies what the editor changed, with the fetched revision as the expected one", async () => {
      const edited = await cli(dev, ["edit", "zone", "eu-west-1-a"], {
        env: { EDITOR: "sed -i -e 's/^description: .*/description: edited in the editor/'", VISUAL: "" },
      });
      assertExit(edited, 0);
      assert.match(edited.stdout, /^updated +zone\/eu-west-1-a +\(revision 2\)$/m);
      const get = await stackl("get", "zone", "eu-west-1-a", "-o", "json");
      const doc = JSON.parse(get.stdout) as { meta: { description: string; revision: string } };
      assert.deepEqual([doc.meta.description, doc.meta.revision], ["edited in the editor", "2"]);

      const untouched = await cli(dev, ["edit", "zone", "eu-west-1-a"], { env: { EDITOR: "true", VISUAL: "" } });
      assertExit(untouched, 0);
      assert.match(untouched.stdout, /Edit cancelled: zone\/eu-west-1-a was not changed/);
    });

    it("edit keeps the file when it is invalid, rejected, or someone else changed the document", async () => {
      const keptFile = (stderr: string): string => {
        const match = /your edit is kept in (\S+)/.exec(stderr);
        assert.ok(match?.[1], stderr);
        assert.ok(existsSync(match[1]), `${match[1]} exists`);
        return match[1];
      };

      const syntax = await cli(dev, ["edit", "zone", "eu-west-1-a"], {
        env: { EDITOR: "sed -i -e 's/^params:$/params: [unclosed/'", VISUAL: "" },
      });
      assertExit(syntax, 1);
      assert.match(syntax.stderr, /zone-eu-west-1-a\.yaml#1: invalid YAML/);
      assert.match(await readFile(keptFile(syntax.stderr), "utf8"), /params: \[unclosed/);

      const rejected = await cli(dev, ["edit", "service", "web"], {
        env: { EDITOR: "sed -i -e 's/- nginx$/- nginx-typo/'", VISUAL: "" },
      });
      assertExit(rejected, 1);
      assert.match(
        rejected.stderr,
        /service-web\.yaml#1: functional_requirements\[1\]: references functional_requirement "nginx-typo", which does not exist/,
      );
      keptFile(rejected.stderr);

      // The "editor" first lets someone else write the document, then makes its own change.
      const other = path.join(scratch, "concurrent.yaml");
      await writeFile(other, "name: eu-west-1-b\ntype: zone\ndescription: changed meanwhile\n");
      const racer = `node --import tsx src/main.ts apply -f ${other} >/dev/null && sed -i -e 's/^description: .*/description: mine/'`;
      const conflict = await cli(dev, ["edit", "zone", "eu-west-1-b"], { env: { EDITOR: racer, VISUAL: "" } });
      assertExit(conflict, 1);
      assert.match(conflict.stderr, /zone\/eu-west-1-b was changed by someone else after revision 1 was fetched/);
      assert.match(await readFile(keptFile(conflict.stderr), "utf8"), /description: mine/);
      const now = JSON.parse((await stackl("get", "zone", "eu-west-1-b", "-o", "json")).stdout) as {
        meta: { description: string };
      };
      assert.equal(now.meta.description, "changed meanwhile");
      for (const stderr of [syntax.stderr, rejected.stderr, conflict.stderr]) {
        await rm(path.dirname(keptFile(stderr)), { recursive: true, force: true });
      }
    });

    it("history lists revisions newest first with their changes; restore writes an old revision back", async () => {
      const table = await stackl("history", "zone", "eu-west-1-a");
      assertExit(table, 0);
      assert.match(
        table.stdout,
        /^REVISION +OPERATION +AUTHOR +TIME +CHANGES\n +2 +apply +\S+ +\S+ +1\n +1 +apply +\S+ +\S+ +1\n$/,
      );
      const diff = await stackl("history", "zone", "eu-west-1-a", "--diff");
      assertExit(diff, 0);
      assert.match(diff.stdout, /^revision 2 {2}apply/);
      assert.match(diff.stdout, /\n {2}~ description: "Availability zone eu-west-1a" -> "edited in the editor"\n/);

      const restored = await stackl("restore", "zone", "eu-west-1-a", "--revision", "1");
      assertExit(restored, 0);
      assert.match(restored.stdout, /^restored +zone\/eu-west-1-a +revision 1 as revision 3$/m);
      const json = JSON.parse((await stackl("history", "zone", "eu-west-1-a", "-o", "json")).stdout) as {
        revisions: { revision: string; operation: string; restoredFrom?: string }[];
      };
      assert.deepEqual(
        json.revisions.map((r) => [r.revision, r.operation, r.restoredFrom ?? "0"]),
        [
          ["3", "restore", "1"],
          ["2", "apply", "0"],
          ["1", "apply", "0"],
        ],
      );
      const back = await stackl("get", "zone", "eu-west-1-a", "-o", "yaml", "--format", "stackl");
      const [doc] = parseDocumentText(back.stdout, "back.yaml");
      const original = treeDocs().find((d) => key(d) === "zone/eu-west-1-a");
      assert.ok(doc?.doc && original && sameContent(withoutCompiled(doc.doc), original));

      const old = await stackl("get", "zone", "eu-west-1-a", "--revision", "2", "-o", "json");
      assertExit(old, 0);
      assert.equal(
        (JSON.parse(old.stdout) as { meta: { description: string } }).meta.description,
        "edited in the editor",
      );
    });

    it("delete writes a deletion revision; restore brings the document back; --revision guards both", async () => {
      const stale = await stackl("delete", "sit", "eu-platform", "--revision", "7");
      assertExit(stale, 1);
      assert.match(stale.stderr, /expected revision 7/);

      const deleted = await stackl("delete", "sit", "eu-platform", "--revision", "1");
      assertExit(deleted, 0);
      assert.match(
        deleted.stdout,
        /^deleted +stack_infrastructure_template\/eu-platform +\(revision 2 records the deletion\)$/m,
      );
      assertExit(await stackl("get", "sit", "eu-platform"), 1);
      const history = await stackl("history", "sit", "eu-platform");
      assert.match(history.stdout, /\n +2 +delete +/);

      const restored = await stackl("restore", "sit", "eu-platform", "--revision", "1", "--expected-revision", "0");
      assertExit(restored, 0);
      assert.match(restored.stdout, /revision 1 as revision 3/);
      assertExit(await stackl("get", "sit", "eu-platform"), 0);
    });

    it("usage errors exit 2 and name the problem; unknown documents exit 1", async () => {
      const kind = await stackl("get", "pods");
      assertExit(kind, 2);
      assert.match(kind.stderr, /unknown document kind "pods"; valid kinds: environment/);
      assertExit(await stackl("restore", "zone", "x"), 2);
      assertExit(await stackl("get", "zone", "-l", "novalue"), 2);
      const missing = await stackl("history", "zone", "nope");
      assertExit(missing, 1);
      assert.match(missing.stderr, /zone "nope" not found/);
    });
  });

  describe("tasks", () => {
    const runTask = async (...args: string[]): Promise<string> => {
      const result = await stackl("task", "run", "system.sleep", "-q", ...args);
      assertExit(result, 0);
      const id = result.stdout.trim();
      assert.match(id, /^\S+$/);
      return id;
    };

    /** Polls `stackl task ID -o json` (bounded) until the task is in `state`. */
    const waitState = async (id: string, state: string): Promise<void> => {
      const deadline = Date.now() + CLI_TIMEOUT_MS;
      for (;;) {
        const { stdout } = await stackl("task", id, "-o", "json");
        if ((JSON.parse(stdout) as { state?: string }).state === state) return;
        assert.ok(Date.now() < deadline, `task ${id} never reached ${state}: ${stdout}`);
      }
    };

    let succeeded = "";
    let failed = "";

    it("task run system.sleep, then task ID -w follows it to succeeded and exits 0", async () => {
      succeeded = await runTask("--ms", "100");
      const watch = await stackl("task", succeeded, "-w");
      assertExit(watch, 0);
      assert.match(watch.stdout, new RegExp(`^task ${succeeded} \\(system\\.sleep\\)$`, "m"));
      assert.match(watch.stdout, /^\d\d:\d\d:\d\d {2}succeeded( in \S+)?$/m);
      assert.match(watch.stdout, /^result: \{"slept_ms":100\}$/m);
      const details = await stackl("task", succeeded);
      assertExit(details, 0);
      assert.match(details.stdout, /^State: +succeeded$/m);
      assert.match(details.stdout, /^Input: +\{"ms":100\}$/m);
    });

    it("task run --wait returns the finished task; a failing task ends failed and -w exits 1 with the error", async () => {
      const waited = await stackl("task", "run", "system.sleep", "--ms", "10", "--wait", "30s");
      assertExit(waited, 0);
      assert.match(waited.stdout, /succeeded/);

      failed = await runTask("--fail", "terminal", "--max-attempts", "1");
      const watch = await stackl("task", failed, "-w");
      assertExit(watch, 1);
      assert.match(watch.stdout, /^\d\d:\d\d:\d\d {2}failed: /m);
      assert.match(watch.stderr, /system\.sleep asked to fail \(terminal\)/);
    });

    it("tasks lists them newest first; --state and --type filter; -o json is proto JSON", async () => {
      const table = await stackl("tasks");
      assertExit(table, 0);
      assert.match(table.stdout, /^ID +TYPE +STATE +ATTEMPTS +AGE +ERROR\n/);
      assert.match(table.stdout, new RegExp(`^${succeeded} +system\\.sleep +succeeded +1/\\d+ `, "m"));
      assert.match(
        table.stdout,
        new RegExp(
          `^${failed} +system\\.sleep +failed +1/1 +\\S+ +failed_precondition: system\\.sleep asked to fail \\(terminal\\)$`,
          "m",
        ),
      );

      const json = await stackl("tasks", "--state", "failed", "--type", "system.sleep", "-o", "json");
      assertExit(json, 0);
      const tasks = (JSON.parse(json.stdout) as { tasks: { id: string; state: string }[] }).tasks;
      assert.ok(tasks.length >= 1);
      assert.ok(tasks.every((t) => t.state === "TASK_STATE_FAILED"));
      assert.ok(tasks.some((t) => t.id === failed));
      assertExit(await stackl("tasks", "--state", "sleeping"), 2);
    });

    it("cancel task stops a running task; task ID -w then exits 1", async () => {
      const id = await runTask("--ms", "600000");
      await waitState(id, "TASK_STATE_RUNNING");
      const cancel = await stackl("cancel", "task", id, "--reason", "e2e test", "--wait", "30s");
      assertExit(cancel, 0);
      assert.match(cancel.stdout, new RegExp(`^task ${id} cancelled$`, "m"));
      const watch = await stackl("task", id, "-w");
      assertExit(watch, 1);
      assert.match(watch.stdout, /cancelled/);
      const again = await stackl("cancel", "task", id);
      assertExit(again, 0);
      assert.match(again.stdout, /cancelled/);
    });

    it("tasks -w redraws when tasks change and stops cleanly on Ctrl-C", async () => {
      const live = spawnCli(dev, ["tasks", "-w", "--type", "system.sleep"]);
      const { child } = live;
      try {
        await live.waitFor(/^ID +TYPE +STATE/m);
        const id = await runTask("--ms", "10");
        await live.waitFor(new RegExp(`^${id} +system\\.sleep +succeeded`, "m"));
        child.kill("SIGINT");
        assert.ok(await waitChildExit(child, CLI_TIMEOUT_MS), "tasks -w exits after SIGINT");
        assert.equal(child.exitCode, 0);
      } finally {
        child.kill("SIGKILL");
      }
    });
  });
});
