import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_REJECTIONS_PER_SERVICE, summariseRejections } from "../../../src/services/stack-codec.js";

test("plans of large estates stay small: replica trimming is one entry, other rejections are capped and counted", () => {
  const rejections = [
    ...Array.from({ length: 500 }, (_, i) => ({
      target: `t${i}`,
      phase: "orchestration",
      policy: "orchestration.tags",
      message: "tag",
    })),
    ...Array.from({ length: 9000 }, (_, i) => ({
      target: `r${i}`,
      phase: "replicas",
      policy: "replicas",
      message: "beyond",
    })),
    { target: "*", phase: "replicas", policy: "replicas", message: "3 replicas need 3 distinct targets" },
  ];
  const out = summariseRejections(rejections);
  assert.equal(out.length, MAX_REJECTIONS_PER_SERVICE + 2);
  assert.deepEqual(
    out.slice(0, 3).map((r) => r.target),
    ["*", "t0", "t1"],
  );
  assert.ok(out.some((r) => r.phase === "replicas" && r.target === "*" && r.message.startsWith("3 replicas")));
  assert.match(out.find((r) => r.phase === "summary")?.message ?? "", /^301 more rejected targets/);
  assert.match(out.at(-1)?.message ?? "", /^9000 more qualifying targets beyond the requested replicas \(first: r0\)/);
  assert.deepEqual(summariseRejections([]), []);
});
