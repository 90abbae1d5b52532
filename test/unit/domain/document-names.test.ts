import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  isValidName,
  labelKeyProblem,
  labelValueProblem,
  nameProblem,
  validateLabels,
  validateName,
} from "../../../src/domain/document-names.js";

describe("document names", () => {
  it("accepts 1-63 letters, digits, _ and - starting with a letter or digit", () => {
    for (const name of ["a", "web", "eu-west-1-a", "linux_vm", "0day", "A-b_C", "x".repeat(63)]) {
      assert.equal(nameProblem(name), undefined, name);
    }
  });

  it("rejects empty, long, dotted and badly started names", () => {
    assert.match(nameProblem("") ?? "", /required/);
    assert.match(nameProblem("x".repeat(64)) ?? "", /64 characters.*at most 63/);
    assert.match(nameProblem("eu.west") ?? "", /must not contain "\."/);
    for (const name of ["-web", "_web", "web server", "wéb", "web/1", "web:1"]) {
      assert.ok(nameProblem(name) !== undefined, name);
    }
  });

  it("requires policy template names to be Rego package names", () => {
    assert.equal(nameProblem("keep_in_location", "policy_template"), undefined);
    assert.equal(nameProblem("Policy2", "policy_template"), undefined);
    assert.match(nameProblem("keep-in-location", "policy_template") ?? "", /Rego package name/);
    assert.match(nameProblem("2fast", "policy_template") ?? "", /Rego package name/);
    assert.match(nameProblem("default", "policy_template") ?? "", /Rego keyword/);
    assert.match(nameProblem("package", "policy_template") ?? "", /Rego keyword/);
    // "_x" passes the Rego rule but not the general first-character rule.
    assert.ok(nameProblem("_x", "policy_template") !== undefined);
    assert.ok(isValidName("keep-in-location"));
    assert.ok(!isValidName("keep-in-location", "policy_template"));
  });

  it("reports a violation at the given field", () => {
    assert.deepEqual(validateName("ok", "documents[0].meta.name"), []);
    const [violation] = validateName("a.b", "documents[0].meta.name");
    assert.equal(violation?.field, "documents[0].meta.name");
  });

  it("checks label keys and values", () => {
    assert.equal(labelKeyProblem("team"), undefined);
    assert.equal(labelKeyProblem("stackl.io/owner"), undefined);
    assert.match(labelKeyProblem("") ?? "", /empty/);
    assert.ok(labelKeyProblem("-team") !== undefined);
    assert.ok(labelKeyProblem("team ") !== undefined);
    assert.match(labelKeyProblem("k".repeat(64)) ?? "", /at most 63/);
    assert.equal(labelValueProblem(""), undefined);
    assert.equal(labelValueProblem("v1.2_rc-3"), undefined);
    assert.ok(labelValueProblem("a,b") !== undefined);
    assert.ok(labelValueProblem("a=b") !== undefined);
    assert.match(labelValueProblem("v".repeat(64)) ?? "", /at most 63/);
  });

  it("validates a label map with exact paths, sorted by key", () => {
    const violations = validateLabels({ zeta: "ok", "bad key": "ok", alpha: "bad value!" }, "x.meta.labels");
    assert.deepEqual(
      violations.map((v) => v.field),
      ['x.meta.labels["alpha"]', 'x.meta.labels["bad key"]'],
    );
  });
});
