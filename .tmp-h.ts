import { PolicyEngine } from "./src/policy/policy-engine.js";
import { builtinBundle } from "./src/policy/builtin-policies.js";
import { withSortHints } from "./src/policy/contracts.js";
import { estate } from "./test/unit/policy/policy-fixtures.js";
const engine = new PolicyEngine({ recycleAboveMemoryBytes: 2**40 });
const p = await engine.load(builtinBundle("orchestration"));
for (const [s, t] of [[1000, 10000], [100, 1000], [10, 100]]) {
const inp = withSortHints(estate({ services: s, targets: t }));
  for (const ep of ["orchestration/solution_groups", "orchestration/solutions", "orchestration/rejection_groups"]) {
  p.evaluate(ep, inp);
  const n = s === 1000 ? 2 : s === 100 ? 10 : 100;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) p.evaluate(ep, inp);
  console.log(s, t, ep, ((performance.now() - t0) / n).toFixed(1), "ms");
  }
}
