// Memory stays flat over many evaluations (npm-opa-wasm#143): 200,000 evaluations of the orchestration policy on
// varied inputs, JS heap and WebAssembly memory measured after a warm-up and at the end (figures logged).
import assert from "node:assert/strict";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { builtinBundle } from "../../../src/policy/builtin-policies.js";
import type { OrchestrationInput } from "../../../src/policy/contracts.js";
import {
  type CompiledPolicy,
  DEFAULT_RECYCLE_AFTER_EVALUATIONS,
  PolicyEngine,
} from "../../../src/policy/policy-engine.js";
import { estate, webshopInput } from "./policy-fixtures.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const EVALUATIONS = 200_000;
const WARM_UP = 10_000;
/** Allowed growth of the JS heap between warm-up and the end. */
const HEAP_BOUND_BYTES = 8 * 1024 * 1024;

interface Snapshot {
  heapUsed: number;
  external: number;
  rss: number;
  wasm: number;
}

function snapshot(policy: CompiledPolicy): Snapshot {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, external: m.external, rss: m.rss, wasm: policy.stats().memoryBytes };
}

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(2)} MiB`;

/** A few realistic inputs of different sizes and required tags, cycled. */
function inputs(): OrchestrationInput[] {
  return [
    webshopInput(),
    webshopInput({ environment: "development" }),
    webshopInput({ environment: "production", tier: "gold" }),
    estate({ services: 4, targets: 12 }),
    { services: { x: { service: "x", resource_requirements: { memory: "1PB" } } }, infrastructure_targets: {} },
  ];
}

function run(policy: CompiledPolicy, list: OrchestrationInput[], n: number): void {
  for (let i = 0; i < n; i++) {
    const ev = policy.evaluate("orchestration/solutions", list[i % list.length]);
    if (!ev.defined) throw new Error(`evaluation ${i} undefined`);
  }
}

test(`memory stays flat over ${EVALUATIONS} evaluations (instances recycled)`, { timeout: 600_000 }, async (t) => {
  const engine = new PolicyEngine();
  const policy = await engine.load(builtinBundle("orchestration"));
  const list = inputs();
  run(policy, list, WARM_UP);
  const before = snapshot(policy);
  const started = performance.now();
  run(policy, list, EVALUATIONS);
  const seconds = (performance.now() - started) / 1000;
  const after = snapshot(policy);
  const stats = policy.stats();
  t.diagnostic(
    `after warm-up: heap ${mib(before.heapUsed)}, external ${mib(before.external)}, rss ${mib(before.rss)}, ` +
      `wasm ${mib(before.wasm)}`,
  );
  t.diagnostic(
    `after ${EVALUATIONS} more: heap ${mib(after.heapUsed)}, external ${mib(after.external)}, rss ${mib(after.rss)}, ` +
      `wasm ${mib(after.wasm)}; ${stats.recycles} recycles; ${Math.round(EVALUATIONS / seconds)} eval/s`,
  );
  assert.equal(stats.evaluations, WARM_UP + EVALUATIONS);
  assert.equal(stats.recycles, Math.floor((WARM_UP + EVALUATIONS) / DEFAULT_RECYCLE_AFTER_EVALUATIONS));
  assert.ok(after.wasm <= before.wasm, `wasm memory ${after.wasm} > ${before.wasm}`);
  assert.ok(
    after.heapUsed - before.heapUsed < HEAP_BOUND_BYTES,
    `JS heap grew by ${mib(after.heapUsed - before.heapUsed)} (bound ${mib(HEAP_BOUND_BYTES)})`,
  );
  assert.ok(
    after.external - before.external < HEAP_BOUND_BYTES,
    `external grew by ${mib(after.external - before.external)}`,
  );
});

test("for comparison: one instance never recycled (figures only)", { timeout: 600_000 }, async (t) => {
  const engine = new PolicyEngine({
    recycleAfterEvaluations: Number.MAX_SAFE_INTEGER,
    recycleAboveMemoryBytes: 2 ** 40,
  });
  const policy = await engine.load(builtinBundle("orchestration"));
  const list = inputs();
  run(policy, list, WARM_UP);
  const before = snapshot(policy);
  run(policy, list, EVALUATIONS / 4);
  const after = snapshot(policy);
  t.diagnostic(
    `never recycled, ${EVALUATIONS / 4} evaluations: wasm ${mib(before.wasm)} → ${mib(after.wasm)}, ` +
      `heap ${mib(before.heapUsed)} → ${mib(after.heapUsed)}`,
  );
  assert.equal(policy.stats().recycles, 0);
});
