import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  expandPaths,
  fileField,
  formatMappedViolation,
  formatProblem,
  loadDocuments,
  mapViolation,
  relativeField,
} from "../../../src/cli/files.js";
import { loadStacklTree, stacklTreeDir, stacklTreeFiles } from "../../fixtures/stackl-tree.js";

describe("expandPaths / loadDocuments", () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "stackl-files-"));
    const write = async (rel: string, text: string): Promise<void> => {
      await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
      await writeFile(path.join(dir, rel), text);
    };
    await write("tree/b/zones.yaml", "name: z1\ntype: zone\n---\n# only a comment\n---\nname: z2\ntype: zone\n");
    await write("tree/a.json", JSON.stringify({ name: "prod", type: "environment", cloud_provider: "aws" }));
    await write("tree/a/nested/env.yml", "meta: {name: dev}\nenvironment: {agent: lab}\n");
    await write("tree/README.md", "# not a document\n");
    await write("tree/.hidden.yaml", "name: hidden\ntype: zone\n");
    await write("tree/.git/config.yaml", "name: git\ntype: zone\n");
    await write("tree/c.YML", "name: z3\ntype: zone\n");
    await write("empty/notes.txt", "nothing\n");
    await write("bad/broken.yaml", "name: fr\ntype: functional_requirement\nparams: [1, 2]\n---\nname: [oops\n");
    await write("bad/ok.yaml", "name: z\ntype: zone\ncolour: blue\n");
    await write("loose.txt", "name: z9\ntype: zone\n");
    await symlink(path.join(dir, "tree"), path.join(dir, "tree/b/loop"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("walks directories recursively in sorted order, only .yaml/.yml/.json, skipping dot-files and loops", async () => {
    const { files, problems } = await expandPaths(["tree"], dir);
    assert.deepEqual(problems, []);
    assert.deepEqual(files, ["tree/a.json", "tree/a/nested/env.yml", "tree/b/zones.yaml", "tree/c.YML"]);
  });

  it("takes files as given (any extension), reads a file reached twice once, reports missing and empty paths", async () => {
    const { files, problems } = await expandPaths(["loose.txt", "tree/c.YML", "tree", "missing.yaml", "empty"], dir);
    assert.deepEqual(files, ["loose.txt", "tree/c.YML", "tree/a.json", "tree/a/nested/env.yml", "tree/b/zones.yaml"]);
    assert.deepEqual(problems.map(formatProblem), [
      "missing.yaml: no such file or directory",
      "empty: no .yaml, .yml or .json files in this directory",
    ]);
  });

  it("shows paths outside the working directory as absolute", async () => {
    const { files } = await expandPaths([path.join(dir, "loose.txt")], path.join(dir, "tree"));
    assert.deepEqual(files, [path.join(dir, "loose.txt")]);
  });

  it("parses multi-document YAML, JSON, STACKL and native files, numbering documents within a file", async () => {
    const result = await loadDocuments(["tree"], { cwd: dir });
    assert.deepEqual(result.problems, []);
    assert.deepEqual(
      result.documents.map((d) => [d.source, d.format, d.doc.spec.case, d.doc.meta?.name]),
      [
        ["tree/a.json#1", "stackl", "environment", "prod"],
        ["tree/a/nested/env.yml#1", "native", "environment", "dev"],
        ["tree/b/zones.yaml#1", "stackl", "zone", "z1"],
        ["tree/b/zones.yaml#3", "stackl", "zone", "z2"],
        ["tree/c.YML#1", "stackl", "zone", "z3"],
      ],
    );
  });

  it("reports every local problem as `file#n: field: message` and warnings for ignored fields", async () => {
    const result = await loadDocuments(["bad"], { cwd: dir });
    assert.deepEqual(
      result.documents.map((d) => d.source),
      ["bad/ok.yaml#1"],
    );
    const lines = result.problems.map(formatProblem);
    assert.equal(lines.length, 2);
    assert.match(lines[0] ?? "", /^bad\/broken\.yaml#1: params: expected a mapping, not a list$/);
    assert.match(lines[1] ?? "", /^bad\/broken\.yaml#2: invalid YAML: /);
    assert.deepEqual(result.warnings, ['bad/ok.yaml#1: unknown field "colour" ignored']);
  });

  it("reads - from standard input", async () => {
    const result = await loadDocuments(["-"], { cwd: dir, readStdin: async () => "name: s\ntype: zone\n" });
    assert.deepEqual(
      result.documents.map((d) => [d.source, d.file]),
      [["stdin#1", "-"]],
    );
  });

  it("loads the STACKL fixture tree exactly as the shared reader does", async () => {
    const result = await loadDocuments([stacklTreeDir]);
    assert.deepEqual(result.problems, []);
    const expected = loadStacklTree();
    assert.equal(result.documents.length, expected.length);
    assert.equal(result.files.length, stacklTreeFiles().length);
    assert.deepEqual(
      result.documents.map((d) => d.doc.meta?.name),
      expected.map((d) => d.doc?.meta?.name),
    );
  });
});

describe("relativeField", () => {
  it("strips the document path", () => {
    assert.equal(relativeField("a.yml#2.params", "a.yml#2"), "params");
    assert.equal(relativeField('a.yml#2.invocation["generic"].serial', "a.yml#2"), 'invocation["generic"].serial');
    assert.equal(relativeField("a.json#1[0].name", "a.json#1[0]"), "name");
    assert.equal(relativeField("a.yml#2", "a.yml#2"), "");
    assert.equal(relativeField("a.json#1[3]", "a.json#1"), "[3]");
  });
});

describe("mapping server violations back to files", () => {
  const documents = [
    { source: "zones.yaml#1", format: "stackl" as const },
    { source: "services/web.yml#1", format: "stackl" as const },
    { source: "native.yaml#2", format: "native" as const },
  ];

  it("maps documents[i].document.<kind>.<field> to the file and the field as written in a STACKL file", () => {
    const mapped = mapViolation(
      {
        field: "documents[1].document.service.functional_requirements[1]",
        message: 'references functional_requirement "nginxx", which does not exist',
      },
      documents,
    );
    assert.deepEqual(mapped, {
      source: "services/web.yml#1",
      field: "functional_requirements[1]",
      message: 'references functional_requirement "nginxx", which does not exist',
    });
    assert.equal(
      formatMappedViolation(mapped),
      'services/web.yml#1: functional_requirements[1]: references functional_requirement "nginxx", which does not exist',
    );
  });

  it("maps metadata, expected revisions and batch references inside messages", () => {
    assert.deepEqual(
      mapViolation(
        { field: "documents[0].document.meta.name", message: "duplicate zone (first at documents[2])" },
        documents,
      ),
      { source: "zones.yaml#1", field: "name", message: "duplicate zone (first at native.yaml#2)" },
    );
    assert.deepEqual(mapViolation({ field: "documents[0].expected_revision", message: "m" }, documents), {
      source: "zones.yaml#1",
      field: "expected_revision",
      message: "m",
    });
    assert.deepEqual(mapViolation({ field: "documents[0]", message: "m" }, documents), {
      source: "zones.yaml#1",
      field: "",
      message: "m",
    });
  });

  it("keeps API paths for native files and leaves unknown paths alone", () => {
    assert.deepEqual(mapViolation({ field: "documents[2].document.zone.params", message: "m" }, documents), {
      source: "native.yaml#2",
      field: "zone.params",
      message: "m",
    });
    assert.deepEqual(mapViolation({ field: "documents[9].document.meta.name", message: "m" }, documents), {
      field: "documents[9].document.meta.name",
      message: "m",
    });
    assert.deepEqual(mapViolation({ field: "documents", message: "too many" }, documents), {
      field: "documents",
      message: "too many",
    });
    assert.equal(formatMappedViolation({ field: "documents", message: "too many" }), "documents: too many");
  });

  it("fileField translates API paths into STACKL file paths", () => {
    assert.equal(fileField('meta.labels["a"]', "stackl"), 'labels["a"]');
    assert.equal(fileField("meta", "stackl"), "");
    assert.equal(
      fileField("stack_infrastructure_template.infrastructure_targets[0].zone", "stackl"),
      "infrastructure_targets[0].zone",
    );
    assert.equal(fileField("functional_requirement", "stackl"), "");
    assert.equal(fileField('functional_requirement.invocation["aws"].tool', "stackl"), 'invocation["aws"].tool');
    assert.equal(fileField("spec", "stackl"), "type");
    assert.equal(fileField("meta.name", "native"), "meta.name");
  });
});
