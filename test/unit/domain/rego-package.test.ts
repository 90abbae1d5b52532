import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { regoPackageOf } from "../../../src/domain/rego-package.js";

describe("regoPackageOf", () => {
  it("reads the package after comments and blank lines", () => {
    const source = "# SAT policy\n\n  # more\npackage keep_in_location\n\nsolutions = {}\n";
    assert.deepEqual(regoPackageOf(source), { ok: true, packageName: "keep_in_location", line: 4 });
  });

  it("tolerates a trailing comment, CRLF and a dotted package", () => {
    assert.deepEqual(regoPackageOf("package p # the package\r\nx = 1"), { ok: true, packageName: "p", line: 1 });
    assert.deepEqual(regoPackageOf("package a.b\n"), { ok: true, packageName: "a.b", line: 1 });
  });

  it("fails when the first statement is not a package", () => {
    const result = regoPackageOf("# comment\nimport data.x\npackage p\n");
    assert.equal(result.ok, false);
    assert.match(result.ok ? "" : result.message, /line 2: the first statement must be "package <name>"/);
    const none = regoPackageOf("# only a comment\n\n");
    assert.deepEqual(none, { ok: false, message: 'no "package" declaration found' });
  });
});
