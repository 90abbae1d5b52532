// Round-trip test for scripts/vendor-validate-proto.ts: the vendored proto/buf/validate/validate.proto must be up
// to date, and compiling it with buf must give back the descriptor embedded in @bufbuild/protovalidate.
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  clearField,
  clone,
  create,
  createFileRegistry,
  createRegistry,
  equals,
  fromBinary,
  getOption,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { embedFileDesc } from "@bufbuild/protobuf/codegenv2";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  type FileDescriptorSet,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { createValidator } from "@bufbuild/protovalidate";
import {
  field as fieldRules,
  file_buf_validate_validate,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import {
  OUTPUT_FILE,
  protovalidatePackage,
  renderValidateProto,
  VALIDATE_PROTO_PATH,
} from "../../scripts/vendor-validate-proto.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const buf = join(repoRoot, "node_modules", ".bin", "buf");
/** Field number of `buf.alpha.image.v1.ImageFile.buf_extension`: metadata buf adds to files in a buf image. */
const BUF_IMAGE_EXTENSION_FIELD = 8042;

let work: string;

/** Writes files below a fresh module dir (with a v2 buf.yaml whose module path is proto/) and runs buf build. */
function bufBuild(name: string, files: Record<string, string>): FileDescriptorSet {
  const dir = join(work, name);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, "proto", path)), { recursive: true });
    writeFileSync(join(dir, "proto", path), text);
  }
  writeFileSync(join(dir, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n");
  execFileSync(buf, ["build", "-o", "out.binpb"], {
    cwd: dir,
    env: { ...process.env, BUF_CACHE_DIR: join(work, "buf-cache") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return fromBinary(FileDescriptorSetSchema, readFileSync(join(dir, "out.binpb")));
}

function fileOf(set: FileDescriptorSet, name: string): FileDescriptorProto {
  const file = set.file.find((f) => f.name === name);
  assert.ok(file, `${name} not in buf build output (${set.file.map((f) => f.name).join(", ")})`);
  return file;
}

/**
 * The normalisation applied to buf's output before comparing, and nothing else:
 * - source_code_info is cleared (the embedded descriptor never has it);
 * - the unknown field 8042 (buf's image metadata, buf.alpha.image.v1.ImageFileExtension, added because
 *   `buf build -o out.binpb` writes an image rather than a plain FileDescriptorSet) is dropped; it must be the
 *   only unknown field of the file.
 * json_name needs no normalisation: buf sets it on every field, and protobuf-es restores the ones it strips when
 * embedding (message fields whose json_name equals protoCamelCase(name)) into file_buf_validate_validate.proto.
 */
function normalise(built: FileDescriptorProto): FileDescriptorProto {
  const file = clone(FileDescriptorProtoSchema, built);
  clearField(file, FileDescriptorProtoSchema.field.sourceCodeInfo);
  const unknown = file.$unknown ?? [];
  assert.deepEqual(
    unknown.filter((u) => u.no !== BUF_IMAGE_EXTENSION_FIELD).map((u) => u.no),
    [],
    "unexpected unknown fields on the built FileDescriptorProto",
  );
  file.$unknown = undefined;
  return file;
}

describe("scripts/vendor-validate-proto.ts", () => {
  before(() => {
    work = mkdtempSync(join(tmpdir(), "vendor-validate-proto-"));
  });
  after(() => {
    rmSync(work, { recursive: true, force: true });
  });

  it("the committed proto/buf/validate/validate.proto is what the script generates", () => {
    assert.equal(
      readFileSync(OUTPUT_FILE, "utf8"),
      renderValidateProto(),
      "stale: run npx tsx scripts/vendor-validate-proto.ts",
    );
  });

  it("the header names the package version, the script, and the Apache-2.0 license", () => {
    const { version } = protovalidatePackage();
    const header = readFileSync(OUTPUT_FILE, "utf8").split("\nsyntax = ")[0]!;
    assert.match(header, new RegExp(`@bufbuild/protovalidate@${version.replaceAll(".", "\\.")} `));
    assert.match(header, /scripts\/vendor-validate-proto\.ts/);
    assert.match(header, /SPDX-License-Identifier: Apache-2\.0/);
    assert.match(header, /Licensed under the Apache License, Version 2\.0/);
  });

  it("buf build of the vendored file reproduces the embedded FileDescriptorProto field for field", () => {
    const set = bufBuild("roundtrip", { [VALIDATE_PROTO_PATH]: readFileSync(OUTPUT_FILE, "utf8") });
    const built = normalise(fileOf(set, VALIDATE_PROTO_PATH));
    const embedded = file_buf_validate_validate.proto;
    // The registry lets the comparisons decode custom options (extensions of *Options, kept as unknown fields).
    const registry = createRegistry(file_buf_validate_validate, ...file_buf_validate_validate.dependencies);

    // 1. Readable structural diff, custom options included (toJson renders resolvable extensions).
    assert.deepStrictEqual(
      toJson(FileDescriptorProtoSchema, built, { registry }),
      toJson(FileDescriptorProtoSchema, embedded, { registry }),
    );
    // 2. protobuf-es field-by-field equality, including extensions and any unknown fields.
    assert.ok(
      equals(FileDescriptorProtoSchema, built, embedded, { registry, extensions: true, unknown: true }),
      "equals() with extensions and unknown fields",
    );
    // 3. Byte-identical serialization.
    assert.deepStrictEqual(
      Buffer.from(toBinary(FileDescriptorProtoSchema, built)),
      Buffer.from(toBinary(FileDescriptorProtoSchema, embedded)),
    );
    // 4. Embedding the built descriptor the way protoc-gen-es does gives the very base64 literal in the package.
    const generated = readFileSync(
      fileURLToPath(import.meta.resolve("@bufbuild/protovalidate/gen/buf/validate/validate_pb.js")),
      "utf8",
    );
    const literal = /fileDesc\("([A-Za-z0-9+/]+)"/.exec(generated)?.[1];
    assert.ok(literal, "no fileDesc literal in validate_pb.js");
    assert.equal(embedFileDesc(built).base64(), literal);
  });

  it("a proto using (buf.validate.field) builds against it, and protovalidate enforces the rules", () => {
    const demo = [
      'syntax = "proto3";',
      "package demo.v1;",
      'import "buf/validate/validate.proto";',
      "message CreateThingRequest {",
      '  string name = 1 [(buf.validate.field).string = {min_len: 1, max_len: 63, pattern: "^[a-z]"}];',
      "  Thing thing = 2 [(buf.validate.field).required = true];",
      "}",
      "message Thing {",
      "  string id = 1;",
      "}",
      "",
    ].join("\n");
    const set = bufBuild("demo", {
      [VALIDATE_PROTO_PATH]: readFileSync(OUTPUT_FILE, "utf8"),
      "demo/v1/demo.proto": demo,
    });
    const registry = createFileRegistry(set);
    const schema = registry.getMessage("demo.v1.CreateThingRequest");
    const thingSchema = registry.getMessage("demo.v1.Thing");
    assert.ok(schema && thingSchema);

    const rules = getOption(schema.field.name!, fieldRules);
    if (rules.type.case !== "string") assert.fail(`expected string rules, got ${rules.type.case}`);
    assert.equal(rules.type.value.minLen, 1n);
    assert.equal(rules.type.value.maxLen, 63n);
    assert.equal(rules.type.value.pattern, "^[a-z]");
    assert.equal(getOption(schema.field.thing!, fieldRules).required, true);

    const validator = createValidator();
    const ok = validator.validate(schema, create(schema, { name: "abc", thing: create(thingSchema) }));
    assert.equal(ok.kind, "valid");

    const bad = validator.validate(schema, create(schema, { name: "Abc" }));
    assert.equal(bad.kind, "invalid");
    const ruleIds = (bad.violations ?? []).map((v) => v.ruleId).sort();
    assert.deepEqual(ruleIds, ["required", "string.pattern"]);

    const empty = validator.validate(schema, create(schema, { name: "", thing: create(thingSchema) }));
    assert.deepEqual((empty.violations ?? []).map((v) => v.ruleId).sort(), ["string.min_len", "string.pattern"]);
    const long = validator.validate(schema, create(schema, { name: "a".repeat(64), thing: create(thingSchema) }));
    assert.deepEqual(
      (long.violations ?? []).map((v) => v.ruleId),
      ["string.max_len"],
    );
  });
});
