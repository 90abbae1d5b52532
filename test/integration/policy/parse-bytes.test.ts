// `units.parse_bytes` is not compiled into WebAssembly: STACKL supplies it as a host built-in written in TypeScript.
// Checked against OPA's own (Go) builtin run by the real opa CLI, value by value (including big.Float rounding
// artefacts such as 33.3333MB = 33333299), and through the compiled orchestration policy at exact byte boundaries.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, test } from "node:test";
import { defaultRepoRoot } from "../../../src/policy/builtin-policies.js";
import { orchestrationSolutions } from "../../../src/policy/contracts.js";
import { runOpa } from "../../../src/policy/opa-cli.js";
import { parseBytes, parseBytesExact } from "../../../src/policy/parse-bytes.js";
import { PolicyEngine } from "../../../src/policy/policy-engine.js";
import { toolPath } from "../../support/tools.js";

const opaPath = toolPath("opa");

const QUANTITIES = [
  "0",
  "1",
  "20",
  "007",
  "1024",
  "1k",
  "1K",
  "1kb",
  "1KB",
  "1ki",
  "1Ki",
  "1KiB",
  "2M",
  "2MB",
  "2Mi",
  "2MiB",
  "512Mi",
  "1G",
  "1GB",
  "1Gi",
  "1GiB",
  "2gb",
  "32768MB",
  "1.5GB",
  "1.5Gi",
  "0.5GB",
  ".5GB",
  "5.GB",
  "2.25MB",
  "1.125KiB",
  "0.1kb",
  "0.3KB",
  "1TB",
  "1.5TB",
  "1Ti",
  "3PB",
  "2Pi",
  "1EB",
  "1Ei",
  '"4GB"',
  "10b", // not a unit
  "1 GB", // spaces
  "GB", // no amount
  "", // nothing
  "1.2.3GB", // bad number
  ".", // bad number
  "-1GB", // signs are accepted by OPA 1.x
  "+1GB",
  "-.5k",
  "--1",
  "1e3",
  "1e3GB",
  "1.5e3kb",
  "1e+2k",
  "2.5e-1KB",
  "1e1234567", // exponent too large
  "1e",
  "1eb",
  "1ei",
  "e5",
  "33.3333MB", // big.Float rounding: 33333299
  "0.9999999kb",
  "4.35kb",
  "1.15GB",
  "123456789.123456789GiB",
  "1XB", // unknown unit
  "1gbs",
  "lots",
];

/** OPA's units.parse_bytes and the policy's Rego parse_bytes for every quantity (undefined when it errors). */
/** Random quantities with long fractions, exponents and every unit (seeded: reproducible). */
function randomQuantities(n: number): string[] {
  let seed = 42;
  const next = (k: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % k;
  };
  const units = [
    "",
    "k",
    "kb",
    "ki",
    "kib",
    "m",
    "mb",
    "mi",
    "mib",
    "g",
    "gb",
    "gi",
    "gib",
    "t",
    "tb",
    "ti",
    "tib",
    "p",
    "pi",
  ];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const whole = String(next(100_000));
    const fraction = Array.from({ length: next(12) }, () => String(next(10))).join("");
    const exponent = next(6) === 0 ? `e${next(2) === 0 ? "-" : ""}${next(4)}` : "";
    const unit = units[next(units.length)] ?? "";
    out.push(
      `${next(8) === 0 ? "-" : ""}${whole}${fraction === "" ? "" : `.${fraction}`}${exponent}${next(3) === 0 ? unit.toUpperCase() : unit}`,
    );
  }
  return out;
}

async function opaEval(quantities: readonly string[] = QUANTITIES): Promise<{
  builtin: Record<string, number>;
  rego: Record<string, number>;
  numbers: number[];
}> {
  const query =
    `qs := ${JSON.stringify(quantities)}\n` +
    "builtin := {q: n | some q in qs; n := units.parse_bytes(q)}\n" +
    "rego := {q: n | some q in qs; n := data.orchestration.parse_bytes(q)}\n" +
    "numbers := [data.orchestration.parse_bytes(12), data.orchestration.parse_bytes(1.5)]";
  const { stdout } = await runOpa(opaPath, [
    "eval",
    "--format",
    "json",
    "--data",
    path.join(defaultRepoRoot, "src/policy/rego/orchestration.rego"),
    query,
  ]);
  const bindings = (JSON.parse(stdout) as { result: Array<{ bindings: Record<string, unknown> }> }).result[0]?.bindings;
  assert.ok(bindings !== undefined, stdout);
  return {
    builtin: (bindings.builtin ?? {}) as Record<string, number>,
    rego: (bindings.rego ?? {}) as Record<string, number>,
    numbers: (bindings.numbers ?? []) as number[],
  };
}

describe("units.parse_bytes", () => {
  test("the TypeScript host built-in agrees with OPA's builtin on every quantity", async () => {
    const { builtin, rego, numbers } = await opaEval();
    assert.ok(Object.keys(builtin).length >= 45, "most quantities parse");
    assert.equal(builtin["33.3333MB"], 33_333_299, "OPA's big.Float artefact, which the TS version must reproduce");
    for (const q of QUANTITIES) {
      assert.equal(parseBytes(q), builtin[q], `TS parseBytes(${JSON.stringify(q)})`);
      // The policy's parse_bytes routes strings to the builtin (natively under opa eval).
      assert.equal(rego[q], builtin[q], `policy parse_bytes(${JSON.stringify(q)})`);
    }
    assert.deepEqual(numbers, [12, 1.5], "JSON numbers are taken as they are");
    assert.deepEqual(parseBytesExact("1 GB"), { ok: false, reason: "spaces not allowed in resource strings" });
    assert.deepEqual(parseBytesExact("1XB"), { ok: false, reason: "byte unit not recognized" });
    assert.deepEqual(parseBytesExact("GB"), { ok: false, reason: "no byte amount provided" });
    assert.deepEqual(parseBytesExact("1.2.3"), { ok: false, reason: "could not parse byte amount to a number" });
    assert.deepEqual(parseBytesExact("1e1234567"), { ok: false, reason: "exponent too large" });
    assert.deepEqual(parseBytesExact("1Ei"), { ok: true, bytes: 1024n ** 6n });
  });

  test("2,000 random quantities: the same bytes as OPA's builtin", async () => {
    const quantities = randomQuantities(2000);
    const { builtin } = await opaEval(quantities);
    const mismatches = quantities.filter((q) => parseBytes(q) !== builtin[q]);
    assert.deepEqual(
      mismatches.map((q) => `${q}: ${parseBytes(q)} vs OPA ${builtin[q]}`),
      [],
    );
    assert.ok(Object.keys(builtin).length > 1900, "nearly all parse");
  });

  test("compiled to WebAssembly, the orchestration policy compares at the exact byte boundary", async () => {
    const { builtin } = await opaEval();
    const engine = new PolicyEngine();
    for (const [q, bytes] of Object.entries(builtin)) {
      if (bytes > Number.MAX_SAFE_INTEGER || bytes === 0) continue;
      const fits = async (available: number): Promise<boolean> =>
        (
          await orchestrationSolutions(
            {
              services: { s: { service: "s", resource_requirements: { memory: q } } },
              infrastructure_targets: { "e.l.z": { resources: { memory: String(available) } } },
            },
            { engine },
          )
        ).value.fulfilled;
      assert.equal(await fits(bytes), true, `${q} = ${bytes} bytes fits in ${bytes}`);
      assert.equal(await fits(bytes - 1), false, `${q} = ${bytes} bytes does not fit in ${bytes - 1}`);
    }
  });
});
