/**
 * Policy evaluations per second, in process (opa-wasm), on the committed built-in bundles:
 *   orchestration solutions / solution_groups / rejections / rejection_groups on realistic estates (services ×
 *   targets; the fixture's services have 6 distinct resource requirements), replicas.solutions,
 *   stackl.authz.allow. Prints figures; asserts nothing.
 *
 *   tsx bench/policy-eval.ts [--seconds N] [--huge]     (--huge adds 1,000 services × 10,000 targets, once)
 */
import { builtinBundle } from "../src/policy/builtin-policies.js";
import { authorize, type ReplicasInput, withSortHints } from "../src/policy/contracts.js";
import { type CompiledPolicy, EncodedInput, PolicyEngine } from "../src/policy/policy-engine.js";
import { estate, webshopInput } from "../test/unit/policy/policy-fixtures.js";

const args = process.argv.slice(2);
const secondsArg = args.indexOf("--seconds");
const SECONDS = secondsArg >= 0 ? Number(args[secondsArg + 1]) : 2;
const HUGE = args.includes("--huge");

interface Row {
  readonly case: string;
  readonly evaluations: number;
  readonly perSecond: number;
  readonly meanMs: number;
  readonly p99Ms: number;
  readonly wasmMiB: number;
}

function measure(label: string, policy: CompiledPolicy, entrypoint: string, input: unknown, maxRuns = Infinity): Row {
  policy.evaluate(entrypoint, input); // warm-up (and result check below)
  const durations: number[] = [];
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  while (performance.now() < deadline && durations.length < maxRuns) {
    const t = performance.now();
    policy.evaluate(entrypoint, input);
    durations.push(performance.now() - t);
  }
  const elapsed = performance.now() - started;
  durations.sort((a, b) => a - b);
  return {
    case: label,
    evaluations: durations.length,
    perSecond: Math.round((durations.length / elapsed) * 1000),
    meanMs: durations.reduce((a, b) => a + b, 0) / durations.length,
    p99Ms: durations[Math.min(durations.length - 1, Math.floor(durations.length * 0.99))] ?? 0,
    wasmMiB: policy.stats().memoryBytes / 1024 / 1024,
  };
}

/** The authz contract as the API's interceptor calls it: allow + reason, result checked. */
async function measureAsync(label: string, engine: PolicyEngine): Promise<Row> {
  const input = { principal: { name: "bob", roles: ["viewer"] }, rpc: "stackl.v1.DocumentService/GetDocument" };
  await authorize(input, { engine });
  const durations: number[] = [];
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  while (performance.now() < deadline) {
    const t = performance.now();
    await authorize(input, { engine });
    durations.push(performance.now() - t);
  }
  const elapsed = performance.now() - started;
  durations.sort((a, b) => a - b);
  return {
    case: label,
    evaluations: durations.length,
    perSecond: Math.round((durations.length / elapsed) * 1000),
    meanMs: durations.reduce((a, b) => a + b, 0) / durations.length,
    p99Ms: durations[Math.floor(durations.length * 0.99)] ?? 0,
    wasmMiB: (await engine.load(builtinBundle("authz"))).stats().memoryBytes / 1024 / 1024,
  };
}

function print(rows: readonly Row[]): void {
  const header = ["case", "evals", "eval/s", "mean ms", "p99 ms", "wasm MiB"];
  const lines = rows.map((r) => [
    r.case,
    String(r.evaluations),
    String(r.perSecond),
    r.meanMs.toFixed(3),
    r.p99Ms.toFixed(3),
    r.wasmMiB.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]?.length ?? 0)));
  const fmt = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  console.log(fmt(header));
  for (const l of lines) console.log(fmt(l));
}

function replicasInput(services: number, targets: number): ReplicasInput {
  const keys = Array.from({ length: targets }, (_, i) => `production.loc.zone-${String(i).padStart(5, "0")}`);
  const input: ReplicasInput = { parameters: { services: {} }, services: {} };
  for (let s = 0; s < services; s++) {
    const alias = `svc-${s}`;
    input.parameters.services[alias] = (s % 3) + 1;
    input.services[alias] = { service: `service-${s % 7}`, targets: keys };
  }
  return input;
}

async function main(): Promise<void> {
  const engine = new PolicyEngine();
  const orchestration = await engine.load(builtinBundle("orchestration"));
  const replicas = await engine.load(builtinBundle("replicas"));
  const authz = await engine.load(builtinBundle("authz"));

  console.log(`policy evaluation benchmark: ${SECONDS}s per case, node ${process.version}, opa-wasm in process`);
  const rows: Row[] = [];
  const shapes: Array<[string, number, number]> = [
    ["4 × 4 (web shop)", 0, 0],
    ["10 services × 100 targets", 10, 100],
    ["100 services × 1,000 targets", 100, 1000],
  ];
  for (const [label, services, targets] of shapes) {
    const raw = services === 0 ? webshopInput() : estate({ services, targets });
    const input = withSortHints(raw); // as the contract wrappers pass it
    const result = orchestration.evaluate<{ fulfilled: boolean }>("orchestration/solutions", input).result;
    if (result?.fulfilled !== true) throw new Error(`${label}: not fulfilled`);
    rows.push(measure(`orchestration.solutions  ${label}`, orchestration, "orchestration/solutions", input));
    rows.push(
      measure(
        `orchestration.solutions  ${label} (pre-encoded)`,
        orchestration,
        "orchestration/solutions",
        EncodedInput.of(input),
      ),
    );
    rows.push(measure(`orchestration.solution_groups ${label}`, orchestration, "orchestration/solution_groups", input));
    rows.push(measure(`orchestration.rejections ${label}`, orchestration, "orchestration/rejections", input));
    rows.push(
      measure(`orchestration.rejection_groups ${label}`, orchestration, "orchestration/rejection_groups", input),
    );
    if (targets >= 1000) {
      rows.push(
        measure(`orchestration.solutions  ${label} (no sort hints)`, orchestration, "orchestration/solutions", raw, 20),
      );
    }
  }
  rows.push(
    measure(
      "replicas.solutions 100 services × 1,000 targets",
      replicas,
      "replicas/solutions",
      replicasInput(100, 1000),
    ),
  );
  rows.push(
    measure("stackl.authz.allow", authz, "stackl/authz/allow", {
      principal: { name: "bob", roles: ["viewer"] },
      rpc: "stackl.v1.DocumentService/GetDocument",
    }),
  );
  rows.push(await measureAsync("authorize() (contract wrapper, both rules)", engine));
  if (HUGE) {
    const raw = estate({ services: 1000, targets: 10_000 });
    const input = withSortHints(raw);
    const label = "1,000 services × 10,000 targets";
    rows.push(
      measure(`orchestration.solution_groups ${label}`, orchestration, "orchestration/solution_groups", input, 10),
    );
    rows.push(
      measure(`orchestration.rejection_groups ${label}`, orchestration, "orchestration/rejection_groups", input, 3),
    );
    rows.push(measure(`orchestration.solutions ${label}`, orchestration, "orchestration/solutions", input, 2));
    rows.push(
      measure(
        `orchestration.solution_groups ${label} (no sort hints)`,
        orchestration,
        "orchestration/solution_groups",
        raw,
        2,
      ),
    );
  }
  print(rows);
  const s = orchestration.stats();
  console.log(`orchestration policy: ${s.evaluations} evaluations, ${s.recycles} instance recycles`);
}

await main();
