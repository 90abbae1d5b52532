import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromJson } from "@bufbuild/protobuf";
import { StructSchema, timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ApplyAction,
  ApplyResultSchema,
  ChangeType,
  type Document,
  DocumentKind,
  DocumentRevisionSchema,
  FieldChangeSchema,
  InfrastructureTargetSchema,
} from "../../../gen/stackl/v1/documents_pb.js";
import { ErrorInfoSchema, TaskSchema, TaskState } from "../../../gen/stackl/v1/tasks_pb.js";
import { renderApplyResults } from "../../../src/cli/commands/apply.js";
import { formatMappedViolation, mapViolation } from "../../../src/cli/files.js";
import {
  parseDurationArgument,
  parseKindArgument,
  parseLabelSelector,
  parseRevision,
} from "../../../src/cli/output/arguments.js";
import {
  documentJson,
  documentsTable,
  documentsYaml,
  labelsText,
  nativeObject,
  shapedObject,
  targetsTable,
  toYaml,
} from "../../../src/cli/output/documents.js";
import { referrersOf, renderError, rpcFailureOf } from "../../../src/cli/output/errors.js";
import { changeLine, revisionsLog, revisionsTable } from "../../../src/cli/output/history.js";
import { colorEnabled, createStyle, PLAIN, stripAnsi } from "../../../src/cli/output/style.js";
import { renderFields, renderTable, truncate } from "../../../src/cli/output/table.js";
import { isTerminal, taskDetails, tasksTable, transitionLine } from "../../../src/cli/output/tasks.js";
import { formatAge, formatElapsed } from "../../../src/cli/output/time.js";
import { sameContent } from "../../../src/domain/canonical-json.js";
import { parseDocumentText } from "../../../src/domain/stackl-format.js";
import { loadStacklTree } from "../../fixtures/stackl-tree.js";

const NOW = Date.parse("2024-05-01T12:00:00Z");

function treeDocs(): Document[] {
  return loadStacklTree().map((p) => {
    assert.ok(p.doc, `${p.path} parses`);
    const doc = p.doc;
    doc.meta = { ...(doc.meta ?? {}), revision: 3n, updateTime: timestampFromMs(NOW - 5 * 60_000) } as Document["meta"];
    return doc;
  });
}

function byName(docs: Document[], name: string): Document {
  const doc = docs.find((d) => d.meta?.name === name);
  assert.ok(doc, name);
  return doc;
}

describe("style", () => {
  it("colors only on a TTY, never with NO_COLOR, always with FORCE_COLOR", () => {
    assert.equal(colorEnabled({ isTTY: true }, {}), true);
    assert.equal(colorEnabled({ isTTY: false }, {}), false);
    assert.equal(colorEnabled({}, {}), false);
    assert.equal(colorEnabled({ isTTY: true }, { NO_COLOR: "1" }), false);
    assert.equal(colorEnabled({ isTTY: true }, { NO_COLOR: "" }), true);
    assert.equal(colorEnabled({ isTTY: true }, { TERM: "dumb" }), false);
    assert.equal(colorEnabled({ isTTY: false }, { FORCE_COLOR: "1" }), true);
    assert.equal(colorEnabled({ isTTY: true }, { FORCE_COLOR: "1", NO_COLOR: "1" }), false);
    const on = createStyle(true);
    assert.equal(on.red("x"), "\u001b[31mx\u001b[39m");
    assert.equal(stripAnsi(on.bold(on.green("ok"))), "ok");
    assert.equal(PLAIN.red("x"), "x");
  });
});

describe("tables", () => {
  it("aligns columns by visible width, even when cells are colored", () => {
    const rows = [
      { a: "x", b: "1" },
      { a: "longer", b: "22" },
    ];
    const style = createStyle(true);
    const text = renderTable(
      rows,
      [
        { header: "NAME", value: (r) => r.a, color: (t, _r, s) => s.green(t) },
        { header: "N", value: (r) => r.b, align: "right" },
      ],
      style,
    );
    assert.equal(stripAnsi(text), "NAME      N\nx         1\nlonger   22\n");
  });

  it("cuts long cells and flattens newlines", () => {
    assert.equal(truncate("abcdef", 4), "abc…");
    assert.equal(truncate("abc", 4), "abc");
    assert.equal(renderTable([{ v: "a\nb" }], [{ header: "V", value: (r) => r.v }]), "V\na b\n");
    assert.equal(
      renderFields([
        ["Name", "x"],
        ["Empty", ""],
        ["Longer key", "y\nz"],
      ]),
      "Name:        x\nLonger key:  y\n             z\n",
    );
  });
});

describe("documents", () => {
  it("lists a kind with NAME, REVISION, UPDATED, LABELS and kind-specific columns (SIT target count)", () => {
    const docs = treeDocs();
    const sit = byName(docs, "eu-platform");
    assert.equal(
      documentsTable([sit], { kind: "stack_infrastructure_template", now: NOW }),
      "NAME          REVISION   UPDATED   LABELS   TARGETS\neu-platform          3   5m        -              4\n",
    );
    const services = docs.filter((d) => d.spec.case === "service");
    const table = documentsTable(services, { kind: "service", now: NOW });
    assert.match(table, /^NAME +REVISION +UPDATED +LABELS +FUNCTIONAL REQUIREMENTS\n/);
    assert.match(table, /\nweb +3 +5m +- +linux, nginx\n/);
    const frs = documentsTable(
      docs.filter((d) => d.spec.case === "functionalRequirement"),
      { kind: "functional_requirement", now: NOW },
    );
    assert.match(frs, /\nlinux +3 +5m +- +aws:tofu, generic:tofu\n/);
    const envs = documentsTable(
      docs.filter((d) => d.spec.case === "environment"),
      { kind: "environment", now: NOW },
    );
    assert.match(envs, /\nproduction +3 +5m +- +aws +prod-agents\n/);
    assert.match(envs, /\ndevelopment +3 +5m +- +- +-\n/);
  });

  it("lists mixed kinds with a KIND column and a summary", () => {
    const docs = treeDocs();
    const table = documentsTable([byName(docs, "webshop"), byName(docs, "allowed_images")], { now: NOW });
    assert.match(table, /^KIND +NAME +REVISION +UPDATED +LABELS +SUMMARY\n/);
    assert.match(table, /\nstack_application_template +webshop .*services: db=database, web, lb=loadbalancer/);
    assert.match(table, /\npolicy_template +allowed_images .*inputs: repositories, bundle: -/);
  });

  it("prints labels sorted as key=value", () => {
    assert.equal(labelsText({}), "-");
    assert.equal(labelsText({ team: "shop", app: "web" }), "app=web,team=shop");
  });

  it("writes STACKL-format YAML that applies back to the same document (YAML 1.1 scalars stay strings)", () => {
    for (const doc of treeDocs()) {
      const text = documentsYaml([doc], "stackl");
      const [parsed, ...rest] = parseDocumentText(text, "out.yaml");
      assert.equal(rest.length, 0);
      assert.deepEqual(parsed?.violations, []);
      assert.ok(parsed?.doc && sameContent(parsed.doc, doc), `${doc.meta?.name} round-trips:\n${text}`);
    }
    const [tricky] = parseDocumentText(
      'name: z\ntype: zone\nparams: {a: "yes", b: "on", c: "1e3", d: "2021-06-14", e: "~", f: "0o17", g: "n"}\n',
      "t.yaml",
    );
    assert.ok(tricky?.doc);
    const again = parseDocumentText(documentsYaml([tricky.doc], "stackl"), "t2.yaml")[0]?.doc;
    assert.ok(again && sameContent(again, tricky.doc));
    assert.deepEqual(again.spec.case === "zone" ? again.spec.value.params : undefined, {
      a: "yes",
      b: "on",
      c: "1e3",
      d: "2021-06-14",
      e: "~",
      f: "0o17",
      g: "n",
    });
  });

  it("writes native YAML (proto field names) that applies back, and keeps multi-line Rego as a block", () => {
    const docs = treeDocs();
    const text = documentsYaml(docs, "native");
    const parsed = parseDocumentText(text, "all.yaml");
    assert.equal(parsed.length, docs.length);
    parsed.forEach((p, i) => {
      assert.deepEqual(p.violations, []);
      assert.equal(p.format, "native");
      const doc = docs[i];
      assert.ok(p.doc && doc && sameContent(p.doc, doc), p.path);
    });
    const policy = toYaml(shapedObject(byName(docs, "allowed_images"), "stackl"), "stackl");
    assert.match(policy, /\npolicy: \|\n {2}package allowed_images\n/);
    assert.match(text, /\n {2}revision: "3"\n/);
    assert.match(text, /functional_requirements:\n/);
  });

  it("drops output-only fields for editing", () => {
    const sit = byName(treeDocs(), "eu-platform");
    if (sit.spec.case !== "stackInfrastructureTemplate") assert.fail("SIT expected");
    sit.spec.value.targets = [
      create(InfrastructureTargetSchema, { key: "production.ireland.eu-west-1-a", agent: "a" }),
    ];
    const full = nativeObject(sit);
    assert.ok((full.stack_infrastructure_template as { targets?: unknown }).targets);
    assert.equal((full.meta as { revision?: string }).revision, "3");
    const editable = nativeObject(sit, { outputOnly: false });
    assert.equal((editable.stack_infrastructure_template as { targets?: unknown }).targets, undefined);
    assert.equal((editable.meta as { revision?: string }).revision, undefined);
    assert.ok(shapedObject(sit, "stackl").infrastructure_capabilities);
    assert.equal(shapedObject(sit, "stackl", { outputOnly: false }).infrastructure_capabilities, undefined);
    assert.equal((documentJson(sit) as { meta: { revision: string } }).meta.revision, "3");
  });

  it("prints computed targets as a table", () => {
    const targets = [
      create(InfrastructureTargetSchema, {
        key: "production.ireland.eu-west-1-a",
        cloudProvider: "aws",
        agent: "prod-agents",
        tags: { tier: "gold", az: "a" },
      }),
    ];
    assert.equal(
      targetsTable(targets),
      "TARGET                           CLOUD PROVIDER   AGENT         TAGS\n" +
        "production.ireland.eu-west-1-a   aws              prod-agents   az=a,tier=gold\n",
    );
  });
});

describe("apply results", () => {
  it("prints one line per document and a summary", () => {
    const results = [
      create(ApplyResultSchema, { kind: DocumentKind.ZONE, name: "a", revision: 1n, action: ApplyAction.CREATED }),
      create(ApplyResultSchema, { kind: DocumentKind.SERVICE, name: "web", revision: 4n, action: ApplyAction.UPDATED }),
      create(ApplyResultSchema, {
        kind: DocumentKind.FUNCTIONAL_REQUIREMENT,
        name: "linux",
        revision: 2n,
        action: ApplyAction.UNCHANGED,
      }),
    ];
    const sources = [{ source: "z.yaml#1" }, { source: "web.yml#1" }, { source: "frs.yml#2" }];
    assert.equal(
      renderApplyResults(results, sources, { dryRun: false, style: PLAIN }),
      [
        "created     zone/a                         (revision 1)   z.yaml#1",
        "updated     service/web                    (revision 4)   web.yml#1",
        "unchanged   functional_requirement/linux   (revision 2)   frs.yml#2",
        "3 documents applied: 1 created, 1 updated, 1 unchanged",
        "",
      ].join("\n"),
    );
    assert.equal(
      renderApplyResults(results.slice(0, 1), sources, { dryRun: true, style: PLAIN }),
      "would create   zone/a     (revision 1)   z.yaml#1\n" +
        "dry run: 1 document checked (1 created, 0 updated, 0 unchanged); nothing was written\n",
    );
  });
});

describe("errors", () => {
  const violation = (field: string, message: string) => ({
    desc: ErrorInfoSchema,
    value: { code: "invalid_argument", field, message },
  });

  it("decodes field violations and maps them back to files", () => {
    const err = new ConnectError("2 invalid fields: …", Code.InvalidArgument, undefined, [
      { desc: ErrorInfoSchema, value: { code: "invalid_argument", message: "…" } },
      violation("documents[1].document.service.functional_requirements[0]", 'references functional_requirement "x"'),
      violation("documents[0].document.meta.name", "must not contain ."),
    ]);
    const failure = rpcFailureOf(err);
    assert.equal(failure?.codeName, "invalid_argument");
    assert.equal(failure?.violations.length, 2);
    const documents = [
      { source: "a.yaml#1", format: "stackl" as const },
      { source: "b.yaml#2", format: "stackl" as const },
    ];
    const text = renderError(err, {
      server: "http://x",
      violationsHeader: "the server rejected the batch; nothing was written:",
      violationLine: (v) => formatMappedViolation(mapViolation(v, documents)),
    });
    assert.equal(
      text,
      "error: the server rejected the batch; nothing was written:\n" +
        '  b.yaml#2: functional_requirements[0]: references functional_requirement "x"\n' +
        "  a.yaml#1: name: must not contain .\n",
    );
  });

  it("lists the referrers of a document that cannot be deleted", () => {
    const err = new ConnectError(
      'functional_requirement "linux" is referenced by service "web" (service.functional_requirements[0]); delete or change those first',
      Code.FailedPrecondition,
      undefined,
      [
        { desc: ErrorInfoSchema, value: { code: "failed_precondition", message: "…" } },
        {
          desc: StructSchema,
          value: fromJson(StructSchema, {
            referrers: [
              { kind: "service", name: "web", field: "service.functional_requirements[0]" },
              { kind: "service", name: "db", field: "service.functional_requirements[0]" },
            ],
          }),
        },
      ],
    );
    const failure = rpcFailureOf(err);
    assert.ok(failure);
    assert.deepEqual(
      referrersOf(failure).map((r) => `${r.kind}/${r.name}`),
      ["service/web", "service/db"],
    );
    assert.equal(
      renderError(err, { server: "http://x" }),
      'error: functional_requirement "linux" is still referenced by:\n' +
        "  service/web   at service.functional_requirements[0]\n" +
        "  service/db    at service.functional_requirements[0]\n" +
        "delete or change those documents first\n",
    );
  });

  it("prints a single violation on one line", () => {
    const err = new ConnectError("revision: revision 2 is a deletion", Code.InvalidArgument, undefined, [
      { desc: ErrorInfoSchema, value: { code: "invalid_argument", message: "revision: revision 2 is a deletion" } },
      violation("revision", "revision 2 is a deletion"),
    ]);
    assert.equal(renderError(err, { server: "s" }), "error: revision: revision 2 is a deletion\n");
  });

  it("says when the server cannot be reached, and prints other errors with their code", () => {
    const down = new ConnectError("connect ECONNREFUSED 127.0.0.1:1", Code.Unavailable);
    assert.match(
      renderError(down, { server: "http://127.0.0.1:1" }),
      /cannot reach the STACKL server at http:\/\/127\.0\.0\.1:1/,
    );
    const notFound = new ConnectError('zone "x" not found', Code.NotFound, undefined, [
      { desc: ErrorInfoSchema, value: { code: "not_found", message: 'zone "x" not found' } },
    ]);
    assert.equal(renderError(notFound, { server: "s" }), 'error: zone "x" not found [not_found]\n');
    assert.equal(renderError(new Error("boom"), { server: "s" }), "error: boom\n");
  });
});

describe("history", () => {
  const revisions = [
    create(DocumentRevisionSchema, {
      revision: 3n,
      operation: "restore",
      restoredFrom: 1n,
      author: "alice",
      createTime: timestampFromMs(NOW),
      changes: [
        create(FieldChangeSchema, {
          path: "zone.params.subnet_id",
          type: ChangeType.CHANGED,
          before: fromJson(ValueSchema, "b"),
          after: fromJson(ValueSchema, "a"),
        }),
      ],
    }),
    create(DocumentRevisionSchema, {
      revision: 2n,
      operation: "apply",
      author: "bob",
      createTime: timestampFromMs(NOW - 60_000),
      changes: [
        create(FieldChangeSchema, { path: "zone.tags.az", type: ChangeType.ADDED, after: fromJson(ValueSchema, "b") }),
        create(FieldChangeSchema, { path: "zone.agent", type: ChangeType.REMOVED, before: fromJson(ValueSchema, "x") }),
      ],
    }),
    create(DocumentRevisionSchema, {
      revision: 1n,
      operation: "apply",
      author: "bob",
      createTime: timestampFromMs(NOW - 120_000),
    }),
  ];

  it("lists revisions newest first with their change counts", () => {
    assert.equal(
      revisionsTable(revisions),
      [
        "REVISION   OPERATION        AUTHOR   TIME                   CHANGES",
        "       3   restore (of 1)   alice    2024-05-01T12:00:00Z         1",
        "       2   apply            bob      2024-05-01T11:59:00Z         2",
        "       1   apply            bob      2024-05-01T11:58:00Z         0",
        "",
      ].join("\n"),
    );
  });

  it("shows field changes with ~, + and -", () => {
    const log = revisionsLog(revisions);
    assert.match(
      log,
      /^revision 3 {2}restore \(of 1\) {2}by alice {2}2024-05-01T12:00:00Z\n {2}~ zone\.params\.subnet_id: "b" -> "a"\n/,
    );
    assert.match(log, /\n {2}\+ zone\.tags\.az: "b"\n {2}- zone\.agent: "x"\n/);
    assert.match(log, /\nrevision 1 .*\n {2}\(no field changes\)\n$/);
    assert.equal(
      changeLine(
        create(FieldChangeSchema, { path: "", type: ChangeType.ADDED, after: fromJson(ValueSchema, { a: 1 }) }),
      ),
      '+ (document): {"a":1}',
    );
    // A whole document appearing or disappearing, reported as a change from or to null.
    const nullValue = fromJson(ValueSchema, null);
    const doc = fromJson(ValueSchema, { description: "d" });
    assert.equal(
      changeLine(create(FieldChangeSchema, { path: "", type: ChangeType.CHANGED, before: nullValue, after: doc })),
      '+ (document): {"description":"d"}',
    );
    assert.equal(
      changeLine(create(FieldChangeSchema, { path: "", type: ChangeType.CHANGED, before: doc, after: nullValue })),
      '- (document): {"description":"d"}',
    );
  });
});

describe("tasks", () => {
  const task = (init: Parameters<typeof create<typeof TaskSchema>>[1]) => create(TaskSchema, init);
  const running = task({
    id: "t-1",
    type: "system.sleep",
    state: TaskState.RUNNING,
    attempts: 1,
    maxAttempts: 5,
    worker: "w1",
    createTime: timestampFromMs(NOW - 90_000),
    startTime: timestampFromMs(NOW - 1_000),
  });
  const failed = task({
    id: "t-2",
    type: "system.sleep",
    state: TaskState.FAILED,
    attempts: 5,
    maxAttempts: 5,
    createTime: timestampFromMs(NOW - 3 * 3_600_000),
    error: { code: "failed_precondition", message: "system.sleep asked to fail (terminal)" },
  });

  it("lists ID, TYPE, STATE, ATTEMPTS, AGE, ERROR", () => {
    assert.equal(
      tasksTable([running, failed], NOW),
      [
        "ID    TYPE           STATE     ATTEMPTS     AGE   ERROR",
        "t-1   system.sleep   running        1/5   1m30s",
        "t-2   system.sleep   failed         5/5      3h   failed_precondition: system.sleep asked to fail (terminal)",
        "",
      ].join("\n"),
    );
  });

  it("describes one task and its transitions", () => {
    const details = taskDetails(running, NOW);
    assert.match(details, /^ID: +t-1\nType: +system\.sleep\nState: +running\nAttempts: +1\/5\nWorker: +w1\n/);
    assert.doesNotMatch(details, /Finished/);
    assert.equal(transitionLine(undefined, running), "running (attempt 1/5 on w1)");
    assert.equal(transitionLine(running, running), undefined);
    const done = task({
      ...running,
      state: TaskState.SUCCEEDED,
      startTime: timestampFromMs(NOW),
      finishTime: timestampFromMs(NOW + 105),
    });
    assert.equal(transitionLine(running, done), "succeeded in 105ms");
    assert.equal(
      transitionLine(undefined, failed),
      "failed: failed_precondition: system.sleep asked to fail (terminal)",
    );
    assert.equal(isTerminal(TaskState.CANCELLED), true);
    assert.equal(isTerminal(TaskState.PENDING), false);
  });

  it("formats ages and durations", () => {
    assert.equal(formatAge(0), "0s");
    assert.equal(formatAge(59_999), "59s");
    assert.equal(formatAge(125_000), "2m5s");
    assert.equal(formatAge(15 * 60_000), "15m");
    assert.equal(formatAge(3_600_000 + 5 * 60_000), "1h5m");
    assert.equal(formatAge(30 * 3_600_000), "30h");
    assert.equal(formatAge(5 * 86_400_000), "5d");
    assert.equal(formatElapsed(105), "105ms");
    assert.equal(formatElapsed(2_549), "2.5s");
  });
});

describe("arguments", () => {
  it("parses kinds, label selectors, durations and revisions", () => {
    assert.equal(parseKindArgument("SIT"), "stack_infrastructure_template");
    assert.equal(parseKindArgument("functional-requirement"), "functional_requirement");
    assert.throws(() => parseKindArgument("pod"), /unknown document kind "pod"; valid kinds: environment/);
    assert.deepEqual(parseLabelSelector("a=b, c = d", { x: "y" }), { x: "y", a: "b", c: "d" });
    assert.deepEqual(parseLabelSelector("empty="), { empty: "" });
    assert.throws(() => parseLabelSelector("novalue"), /expected key=value/);
    assert.equal(parseDurationArgument("30s"), 30_000);
    assert.equal(parseDurationArgument("1m30s"), 90_000);
    assert.equal(parseDurationArgument("2"), 2_000);
    assert.equal(parseDurationArgument("250ms"), 250);
    assert.throws(() => parseDurationArgument("soon"), /expected a duration/);
    assert.equal(parseRevision("3"), 3n);
    assert.throws(() => parseRevision("0"), /1 or more/);
  });
});
