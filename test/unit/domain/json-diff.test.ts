import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diffJson, sameJson } from "../../../src/domain/json-diff.js";

describe("diffJson", () => {
  it("finds nothing between equal values, whatever the key order", () => {
    assert.deepEqual(diffJson({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }), []);
  });

  it("reports added, removed and changed members in sorted key order", () => {
    const before = { service: { params: { region: "eu-west-1", size: 2, old: true } } };
    const after = { service: { params: { zone: "a", region: "eu-central-1", size: 2 } } };
    assert.deepEqual(diffJson(before, after), [
      { path: "service.params.old", type: "removed", before: true },
      { path: "service.params.region", type: "changed", before: "eu-west-1", after: "eu-central-1" },
      { path: "service.params.zone", type: "added", after: "a" },
    ]);
  });

  it("compares arrays by index", () => {
    const before = { service: { functional_requirements: ["linux", "nginx"] } };
    const after = { service: { functional_requirements: ["linux", "haproxy", "nginx"] } };
    assert.deepEqual(diffJson(before, after), [
      { path: "service.functional_requirements[1]", type: "changed", before: "nginx", after: "haproxy" },
      { path: "service.functional_requirements[2]", type: "added", after: "nginx" },
    ]);
    assert.deepEqual(diffJson({ l: [1, 2, 3] }, { l: [1] }), [
      { path: "l[1]", type: "removed", before: 2 },
      { path: "l[2]", type: "removed", before: 3 },
    ]);
  });

  it("descends into objects inside arrays", () => {
    assert.deepEqual(diffJson({ s: [{ name: "a", service: "x" }] }, { s: [{ name: "a", service: "y" }] }), [
      { path: "s[0].service", type: "changed", before: "x", after: "y" },
    ]);
  });

  it("reports a whole value when its type changes", () => {
    assert.deepEqual(diffJson({ p: { a: 1 } }, { p: [1] }), [
      { path: "p", type: "changed", before: { a: 1 }, after: [1] },
    ]);
    assert.deepEqual(diffJson({ p: null }, { p: {} }), [{ path: "p", type: "changed", before: null, after: {} }]);
  });

  it("quotes keys that are not plain", () => {
    assert.deepEqual(diffJson({ tags: {} }, { tags: { "team.owner": "x", "a b": "y", "eu-west-1": "z" } }), [
      { path: 'tags["a b"]', type: "added", after: "y" },
      { path: "tags.eu-west-1", type: "added", after: "z" },
      { path: 'tags["team.owner"]', type: "added", after: "x" },
    ]);
  });

  it("handles the root and undefined as absent", () => {
    assert.deepEqual(diffJson(undefined, { a: 1 }), [{ path: "", type: "added", after: { a: 1 } }]);
    assert.deepEqual(diffJson({ a: 1 }, undefined), [{ path: "", type: "removed", before: { a: 1 } }]);
    assert.deepEqual(diffJson(1, 2), [{ path: "", type: "changed", before: 1, after: 2 }]);
    assert.deepEqual(diffJson({ a: undefined }, {}), []);
  });

  it("is deterministic", () => {
    const before = { z: 1, a: { y: [1, 2], b: "x" } };
    const after = { a: { b: "y", y: [2] }, z: 2 };
    assert.deepEqual(diffJson(before, after), diffJson(structuredClone(before), structuredClone(after)));
    assert.deepEqual(
      diffJson(before, after).map((c) => c.path),
      ["a.b", "a.y[0]", "a.y[1]", "z"],
    );
  });
});

describe("sameJson", () => {
  it("ignores key order and undefined members", () => {
    assert.ok(sameJson({ a: 1, b: { c: [1] } }, { b: { c: [1] }, a: 1, d: undefined }));
    assert.ok(!sameJson([1, 2], [2, 1]));
    assert.ok(!sameJson({ a: 1 }, { a: "1" }));
  });
});
