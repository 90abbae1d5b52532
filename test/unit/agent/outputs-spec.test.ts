import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { lookupPath, mapOutputs, parsePath } from "../../../agent/src/outputs-spec.js";

const doc = {
  ip: "10.0.0.1",
  server: { name: "web", nics: [{ mac: "aa" }, { mac: "bb" }] },
  "odd-key": 1,
  zero: 0,
  no: false,
};

describe("outputs spec", () => {
  test("paths", () => {
    assert.deepEqual(parsePath("a.b.c"), ["a", "b", "c"]);
    assert.deepEqual(parsePath("a[0].b"), ["a", "0", "b"]);
    assert.deepEqual(parsePath("$.a.b"), ["a", "b"]);
    assert.deepEqual(parsePath(""), []);
    assert.deepEqual(parsePath("$"), []);
  });

  test("lookups", () => {
    assert.equal(lookupPath(doc, "ip"), "10.0.0.1");
    assert.equal(lookupPath(doc, "server.name"), "web");
    assert.equal(lookupPath(doc, "server.nics.1.mac"), "bb");
    assert.equal(lookupPath(doc, "server.nics[0].mac"), "aa");
    assert.equal(lookupPath(doc, "odd-key"), 1);
    assert.equal(lookupPath(doc, "zero"), 0);
    assert.equal(lookupPath(doc, "no"), false);
    assert.deepEqual(lookupPath(doc, ""), doc);
    assert.equal(lookupPath(doc, "server.nics.x"), undefined);
    assert.equal(lookupPath(doc, "ip.length"), undefined);
    assert.equal(lookupPath(doc, "missing.deep"), undefined);
    assert.equal(lookupPath(doc, "toString"), undefined);
  });

  test("mapping: named outputs, missing ones null, empty spec passes the document through", () => {
    assert.deepEqual(mapOutputs(doc, { address: "ip", first_mac: "server.nics.0.mac", gone: "nope" }), {
      address: "10.0.0.1",
      first_mac: "aa",
      gone: null,
    });
    assert.deepEqual(mapOutputs(doc, {}), doc);
  });
});
