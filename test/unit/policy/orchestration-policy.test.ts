// The built-in orchestration policy (src/policy/rego/orchestration.rego), evaluated from its committed WebAssembly
// bundle through the contract wrappers: reference §3.3 semantics, sorted output, explanations.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  expandSolutionGroups,
  type OrchestrationInput,
  orchestrationRejectionGroups,
  orchestrationRejections,
  orchestrationSolutionGroups,
  orchestrationSolutions,
  type PlacementResult,
} from "../../../src/policy/contracts.js";
import { EncodedInput, PolicyEngine } from "../../../src/policy/policy-engine.js";
import { estate, webshopInput } from "./policy-fixtures.js";

const engine = new PolicyEngine();

async function place(input: OrchestrationInput): Promise<PlacementResult> {
  return (await orchestrationSolutions(input, { engine })).value;
}

function targetsOf(result: PlacementResult): Record<string, readonly string[]> {
  assert.equal(result.fulfilled, true, JSON.stringify(result));
  if (!result.fulfilled) return {};
  return Object.fromEntries(Object.entries(result.services).map(([alias, s]) => [alias, s.targets]));
}

describe("orchestration.solutions", () => {
  test("places the web shop: resources in GB/MB/TB and plain numbers, tags, sorted targets", async () => {
    const decision = await orchestrationSolutions(webshopInput(), { engine });
    assert.equal(decision.policy, "orchestration");
    assert.equal(decision.rule, "solutions");
    assert.match(decision.bundleSha256, /^[0-9a-f]{64}$/);
    assert.ok(decision.durationMs >= 0);
    assert.deepEqual(decision.value, {
      fulfilled: true,
      services: {
        db: { service: "database", targets: ["production.ireland.eu-west-1-b"] },
        lb: {
          service: "loadbalancer",
          targets: [
            "production.frankfurt.eu-central-1-a",
            "production.ireland.eu-west-1-a",
            "production.ireland.eu-west-1-b",
          ],
        },
        monitoring: {
          service: "monitoring",
          targets: [
            "production.frankfurt.eu-central-1-a",
            "production.ireland.eu-west-1-a",
            "production.ireland.eu-west-1-b",
          ],
        },
        web: {
          service: "web",
          targets: [
            "production.frankfurt.eu-central-1-a",
            "production.ireland.eu-west-1-a",
            "production.ireland.eu-west-1-b",
          ],
        },
      },
    });
    // Aliases come out sorted too, whatever order WebAssembly produced them in.
    assert.ok(decision.value.fulfilled);
    assert.deepEqual(Object.keys(decision.value.services), ["db", "lb", "monitoring", "web"]);
  });

  test("units: decimal and binary prefixes, case, quotes, fractions, plain numbers (string or JSON number)", async () => {
    const cases: Array<[available: string | number, required: string | number, fits: boolean]> = [
      ["1GB", "1000MB", true],
      ["1GB", "1001MB", false],
      ["1Gi", "1073MB", true], // 1 GiB = 1073.74 MB
      ["1Gi", "1074MB", false],
      ["1GiB", "1073741824", true],
      ["1GiB", "1073741825", false],
      ["1.5gb", "1500000000", true],
      ["1.5GB", "1500000001", false],
      ['"2TB"', "2000GB", true],
      ["512Mi", "0.5Gi", true],
      ["512Mi", ".5Gi", true],
      ["511Mi", "0.5Gi", false],
      ["20", "20", true],
      ["20", "21", false],
      ["20", 21, false],
      [32, "4", true],
      [32, 64, false],
      ["1k", "1000", true],
      ["1ki", "1025", false],
      ["3E", "2EB", true],
    ];
    for (const [available, required, fits] of cases) {
      const result = await place({
        services: { s: { service: "s", resource_requirements: { memory: required } } },
        infrastructure_targets: { "e.l.z": { resources: { memory: available } } },
      });
      assert.equal(result.fulfilled, fits, `target ${available} vs requirement ${required}`);
    }
  });

  test("a target lacking a resource, or with an unreadable quantity, is not rejected (as the original)", async () => {
    const result = await place({
      services: { s: { service: "s", resource_requirements: { memory: "4GB", gpu: "1", cpu: "lots" } } },
      infrastructure_targets: {
        "e.l.a": { resources: { memory: "8GB" } }, // no gpu, no cpu key
        "e.l.b": { resources: { memory: "8GB", gpu: "many" } }, // gpu unreadable
        "e.l.c": {}, // no resources at all
        "e.l.d": { resources: { memory: "2GB" } }, // too small
      },
    });
    assert.deepEqual(targetsOf(result), { s: ["e.l.a", "e.l.b", "e.l.c"] });
  });

  test("tags: mismatch rejects, `all` matches anything, a missing tag does not reject", async () => {
    const input: OrchestrationInput = {
      required_tags: { environment: "production", tier: "all" },
      services: { s: { service: "s" } },
      infrastructure_targets: {
        "p.a.1": { tags: { environment: "production", tier: "gold" } },
        "p.a.2": { tags: { environment: "production", tier: "bronze" } },
        "d.a.1": { tags: { environment: "development", tier: "gold" } },
        "x.a.1": { tags: { tier: "gold" } }, // lacks environment
        "y.a.1": {}, // no tags
      },
    };
    assert.deepEqual(targetsOf(await place(input)), { s: ["p.a.1", "p.a.2", "x.a.1", "y.a.1"] });
    // No required tags: everything.
    const { required_tags: _, ...untagged } = input;
    assert.deepEqual(targetsOf(await place(untagged)), { s: ["d.a.1", "p.a.1", "p.a.2", "x.a.1", "y.a.1"] });
  });

  test("not fulfilled: names every service without a target, sorted, in Go's %v set form", async () => {
    const input = webshopInput();
    input.services.huge = { service: "huge", resource_requirements: { memory: "1PB" } };
    input.services.alpha = { service: "alpha", resource_requirements: { memory: "1TB" } };
    const result = await place(input);
    assert.deepEqual(result, {
      fulfilled: false,
      msg: 'Could not find a target for services {"alpha", "huge"}',
    });
    const noTargets = await place({ services: { a: { service: "a" } }, infrastructure_targets: {} });
    assert.deepEqual(noTargets, { fulfilled: false, msg: 'Could not find a target for services {"a"}' });
  });

  test("no services: fulfilled with no placements", async () => {
    assert.deepEqual(await place({ services: {}, infrastructure_targets: { "a.b.c": {} } }), {
      fulfilled: true,
      services: {},
    });
  });

  test("deterministic: the same estate inserted in different orders gives identical results", async () => {
    const input = estate({ services: 12, targets: 60 });
    const shuffled: OrchestrationInput = {
      ...input,
      services: Object.fromEntries(Object.entries(input.services).reverse()),
      infrastructure_targets: Object.fromEntries(
        Object.entries(input.infrastructure_targets).sort(([a], [b]) => (hash(a) < hash(b) ? -1 : 1)),
      ),
    };
    const a = await orchestrationSolutions(input, { engine });
    const b = await orchestrationSolutions(shuffled, { engine });
    assert.deepEqual(b.value, a.value);
    assert.equal(JSON.stringify(b.value), JSON.stringify(a.value));
    assert.ok(a.value.fulfilled);
    for (const placement of Object.values(a.value.services)) {
      assert.deepEqual([...placement.targets], [...placement.targets].sort());
    }
  });

  test("solution_groups: the same decision grouped by resource requirements", async () => {
    for (const input of [
      estate({ services: 30, targets: 120 }),
      webshopInput(),
      (() => {
        const i = webshopInput();
        i.services.huge = { service: "huge", resource_requirements: { memory: "1PB" } };
        return i;
      })(),
    ]) {
      const plain = (await orchestrationSolutions(input, { engine })).value;
      const grouped = (await orchestrationSolutionGroups(input, { engine })).value;
      assert.deepEqual(expandSolutionGroups(input, grouped), plain);
      if (grouped.fulfilled) {
        assert.deepEqual(grouped.groups.flatMap((g) => g.aliases).sort(), Object.keys(input.services).sort());
      }
    }
  });

  test("accepts a pre-encoded input (EncodedInput) with the same result", async () => {
    const input = webshopInput();
    const plain = await orchestrationSolutions(input, { engine });
    const encoded = await orchestrationSolutions(EncodedInput.of(input), { engine });
    assert.deepEqual(encoded.value, plain.value);
  });
});

describe("orchestration.rejections", () => {
  test("explains every rejected target: rule, resource or tag, values and a message", async () => {
    const { value } = await orchestrationRejections(webshopInput(), { engine });
    assert.deepEqual(Object.keys(value), ["db", "lb", "monitoring", "web"]);
    const devTag = {
      rule: "tags",
      tag: "environment",
      required: "production",
      actual: "development",
      msg: 'tag "environment": the target has "development", the request requires "production"',
    };
    assert.deepEqual(value.lb, { "development.lab.rack-1": [devTag] });
    assert.deepEqual(value.db, {
      "development.lab.rack-1": [devTag],
      "production.frankfurt.eu-central-1-a": [
        {
          rule: "resources",
          resource: "memory",
          required: "32GB",
          available: "16GB",
          msg: 'resource "memory": the target offers "16GB" (16000000000 bytes), the service requires "32GB" (32000000000 bytes)',
        },
      ],
      "production.ireland.eu-west-1-a": [
        {
          rule: "resources",
          resource: "disk",
          required: "1.5TB",
          available: "1000GB",
          msg: 'resource "disk": the target offers "1000GB" (1000000000000 bytes), the service requires "1.5TB" (1500000000000 bytes)',
        },
      ],
    });
  });

  test("several reasons for one target: resources (sorted) then tags (sorted)", async () => {
    const { value } = await orchestrationRejections(
      {
        required_tags: { zone_class: "a", environment: "production" },
        services: { s: { service: "s", resource_requirements: { memory: "8GB", cpu: "16" } } },
        infrastructure_targets: {
          "d.l.z": { resources: { memory: "4GB", cpu: "8" }, tags: { environment: "dev", zone_class: "b" } },
          "p.l.z": { resources: { memory: "8GB", cpu: "16" }, tags: { environment: "production", zone_class: "a" } },
        },
      },
      { engine },
    );
    const reasons = value.s?.["d.l.z"] ?? [];
    assert.deepEqual(
      reasons.map((r) => [r.rule, r.rule === "resources" ? r.resource : r.tag]),
      [
        ["resources", "cpu"],
        ["resources", "memory"],
        ["tags", "environment"],
        ["tags", "zone_class"],
      ],
    );
    assert.deepEqual(value.s?.["p.l.z"], undefined);
  });

  test("rejection_groups: the same explanations, once per distinct resource requirements", async () => {
    const input = estate({ services: 24, targets: 150 });
    const perAlias = (await orchestrationRejections(input, { engine })).value;
    const groups = (await orchestrationRejectionGroups(input, { engine })).value;
    // The fixture's requirements: memory 32GB or 4GB (index mod 4 == 0 or not) × cpu 1-3 (index mod 3): 6 profiles.
    assert.equal(groups.length, 6);
    assert.deepEqual(groups.flatMap((g) => g.aliases).sort(), Object.keys(input.services).sort());
    assert.deepEqual(
      groups.map((g) => g.aliases[0]),
      groups.map((g) => g.aliases[0]).sort(),
      "groups in the order of their first alias",
    );
    for (const group of groups) {
      assert.deepEqual([...group.aliases], [...group.aliases].sort());
      for (const alias of group.aliases) {
        assert.deepEqual(group.resource_requirements, input.services[alias]?.resource_requirements);
        assert.deepEqual(perAlias[alias], group.rejections, alias);
      }
    }
  });

  test("sort hints are checked: a wrong hint changes nothing", async () => {
    const input = webshopInput();
    const expected = (await orchestrationSolutions(input, { engine })).value;
    for (const hint of [
      ["production.ireland.eu-west-1-a"], // too few
      ["b", "a", "c", "d"], // not the keys
      [...Object.keys(input.infrastructure_targets)].reverse(), // the keys, unsorted: sorted by the policy
      "nonsense",
    ]) {
      const hinted = { ...input, sort_hints: { infrastructure_targets: hint, services: ["web"] } };
      const { value } = await orchestrationSolutions(EncodedInput.of(hinted), { engine });
      assert.deepEqual(value, expected, JSON.stringify(hint));
    }
  });

  test("rejections and solutions agree on a large estate", async () => {
    const input = estate({ services: 20, targets: 200 });
    const solutions = (await orchestrationSolutions(input, { engine })).value;
    const rejections = (await orchestrationRejections(input, { engine })).value;
    const allTargets = Object.keys(input.infrastructure_targets).sort();
    assert.ok(solutions.fulfilled);
    for (const [alias, placement] of Object.entries(solutions.services)) {
      const rejected = Object.keys(rejections[alias] ?? {});
      assert.deepEqual(
        [...placement.targets, ...rejected].sort(),
        allTargets,
        `${alias}: placed ∪ rejected = all targets`,
      );
      for (const t of placement.targets) assert.ok(!rejected.includes(t));
    }
  });
});

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}
