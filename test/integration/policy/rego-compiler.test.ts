// User policy templates: STACKL-style Rego (pre-1.0 syntax) compiled by the real opa CLI into WebAssembly bundles and
// evaluated through the contract wrappers (SAT solutions with outputs, SIT infringement, service filter); compiler
// errors, malformed results, runtime failures.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { parse as parseYaml } from "yaml";
import { isStacklError, type StacklError } from "../../../src/errors.js";
import {
  type SatPolicyInput,
  satPolicySolutions,
  servicePolicyFilter,
  sitPolicyInfringements,
  type UserPolicy,
} from "../../../src/policy/contracts.js";
import { runOpa } from "../../../src/policy/opa-cli.js";
import { PolicyEngine } from "../../../src/policy/policy-engine.js";
import { type CompiledRegoPolicy, compileRegoPolicy } from "../../../src/policy/rego-compiler.js";
import { stacklTreeDir } from "../../fixtures/stackl-tree.js";
import { toolPath } from "../../support/tools.js";
import { webshopInput } from "../../unit/policy/policy-fixtures.js";

const opaPath = toolPath("opa");
const engine = new PolicyEngine();

function template(file: string): { name: string; policy: string; outputs?: string[] } {
  return parseYaml(readFileSync(path.join(stacklTreeDir, "policy_templates", file), "utf8"));
}

async function compile(name: string, source: string): Promise<CompiledRegoPolicy> {
  return compileRegoPolicy({ name, source, opaPath });
}

/** Asserts `promise` rejects with a StacklError of `code`, optionally checking the message and the field. */
async function rejectsWith(
  promise: Promise<unknown>,
  code: StacklError["code"],
  message: RegExp,
  field?: string,
): Promise<StacklError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(isStacklError(caught, code), `expected StacklError ${code}, got ${String(caught)}`);
  assert.match(caught.message, message);
  if (field !== undefined) assert.equal(caught.violations[0]?.field, field);
  return caught;
}

// A SAT policy in the original's style that declares outputs: per target a VM name and the memory in bytes
// (units.parse_bytes: supplied to WebAssembly by STACKL as a host built-in).
const NAMED_VMS = `package named_vms

# SAT policy with outputs ["vm_name", "memory_bytes"], pre-1.0 Rego.
solutions = {"fulfilled": true, "targets": targets} {
  targets := [t |
    target := input.infrastructure_targets[key]
    startswith(key, "production.")
    t := {
      "target": key,
      "vm_name": concat("-", [input.parameters.prefix, split(key, ".")[2]]),
      "memory_bytes": units.parse_bytes(target.resources.memory),
    }
  ]
  count(targets) > 0
} else = {"fulfilled": false, "msg": "no production target"} {
  true
}
`;

// A service policy: skip FRs listed in inputs.skip, only on delete; pre-1.0 partial set syntax.
const SKIP_ON_DELETE = `package skip_on_delete

filter[fr] {
  fr := input.functional_requirements[_]
  not skipped(fr)
}

skipped(fr) {
  input.action == "delete"
  input.inputs.skip[_] == fr
}
`;

describe("compileRegoPolicy (real opa)", () => {
  test("compiles a STACKL SAT template in pre-1.0 syntax: rules, entrypoints, reproducible SHA-256", async () => {
    const t = template("keep_in_location.yml");
    const compiled = await compile(t.name, t.policy);
    assert.equal(compiled.packageName, "keep_in_location");
    assert.equal(compiled.regoVersion, "v0");
    assert.deepEqual(compiled.rules, ["solutions"]);
    assert.deepEqual(compiled.entrypoints, ["keep_in_location/solutions"]);
    assert.match(compiled.opaVersion, /^\d+\.\d+\.\d+/);
    assert.match(compiled.sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(compiled.hostBuiltins, ["sprintf"]);
    const again = await compile(t.name, t.policy);
    assert.equal(again.sha256, compiled.sha256, "same source, same opa: same bundle");
  });

  test("SAT policy solutions through the contract: filter, not fulfilled with msg", async () => {
    const t = template("keep_in_location.yml");
    const policy: UserPolicy = { name: t.name, bundle: (await compile(t.name, t.policy)).bundle };
    const input: SatPolicyInput = {
      ...webshopInput(),
      parameters: { service: "db", location: "ireland" },
      user_parameters: {},
      replicas: {},
    };
    const ok = await satPolicySolutions(policy, input, { engine });
    assert.equal(ok.policy, "keep_in_location");
    assert.equal(ok.rule, "solutions");
    assert.deepEqual(ok.value, {
      fulfilled: true,
      targets: [
        { target: "production.ireland.eu-west-1-a", outputs: {} },
        { target: "production.ireland.eu-west-1-b", outputs: {} },
      ],
    });
    const none = await satPolicySolutions(
      policy,
      { ...input, parameters: { service: "db", location: "atlantis" } },
      { engine },
    );
    assert.deepEqual(none.value, { fulfilled: false, msg: "no target of service db is in location atlantis" });
  });

  test("SAT policy with declared outputs: per-target outputs, units.parse_bytes host built-in", async () => {
    const compiled = await compile("named_vms", NAMED_VMS);
    assert.deepEqual(compiled.hostBuiltins, ["units.parse_bytes"]);
    const policy: UserPolicy = { name: "named_vms", bundle: compiled.bundle, outputs: ["vm_name", "memory_bytes"] };
    const { value } = await satPolicySolutions(
      policy,
      { ...webshopInput(), parameters: { service: "web", prefix: "shop" } },
      { engine },
    );
    assert.deepEqual(value, {
      fulfilled: true,
      targets: [
        {
          target: "production.frankfurt.eu-central-1-a",
          outputs: { vm_name: "shop-eu-central-1-a", memory_bytes: 16_000_000_000 },
        },
        {
          target: "production.ireland.eu-west-1-a",
          outputs: { vm_name: "shop-eu-west-1-a", memory_bytes: 32_768_000_000 },
        },
        {
          target: "production.ireland.eu-west-1-b",
          outputs: { vm_name: "shop-eu-west-1-b", memory_bytes: 64_000_000_000 },
        },
      ],
    });
    // Without declared outputs the same entries are plain targets.
    const plain = await satPolicySolutions(
      { ...policy, outputs: null },
      { ...webshopInput(), parameters: { service: "web", prefix: "shop" } },
      { engine },
    );
    assert.ok(plain.value.fulfilled && plain.value.targets.every((t) => Object.keys(t.outputs).length === 0));
  });

  test("SIT policy infringement (the fixture's allowed_images, pre-1.0 syntax with sprintf)", async () => {
    const t = template("allowed_images.yml");
    const policy: UserPolicy = { name: t.name, bundle: (await compile(t.name, t.policy)).bundle };
    const input = {
      ...webshopInput(),
      parameters: { repositories: ["registry.example.com/", "ghcr.io/example/"] },
      stack_instance_params: {},
      target: "production.ireland.eu-west-1-a",
    };
    input.services.web = {
      service: "web",
      functional_requirements: {
        linux: { aws: { tool: "terraform", image: "registry.example.com/linux:1" } },
        nginx: { generic: { tool: "ansible", image: "docker.io/evil/nginx:latest" } },
      },
    };
    const bad = await sitPolicyInfringements(policy, input, { engine });
    assert.deepEqual(bad.value, [
      {
        // sprintf comes from the JS SDK (sprintf-js): %v of a list prints "a,b", not Go's ["a", "b"].
        msg: "functional requirement nginx uses image docker.io/evil/nginx:latest outside the allowed repositories registry.example.com/,ghcr.io/example/",
      },
    ]);
    input.services.web.functional_requirements = {
      linux: { aws: { tool: "terraform", image: "registry.example.com/linux:1" } },
    };
    assert.deepEqual((await sitPolicyInfringements(policy, input, { engine })).value, []);
  });

  test("service policy filter (pre-1.0 partial set): sorted, de-duplicated names", async () => {
    const compiled = await compile("skip_on_delete", SKIP_ON_DELETE);
    assert.deepEqual(compiled.rules, ["filter"]);
    const policy: UserPolicy = { name: "skip_on_delete", bundle: compiled.bundle };
    const base = {
      inputs: { skip: ["backup"] },
      functional_requirements: ["linux", "backup", "nginx"],
      infrastructure_target: "production.ireland.eu-west-1-a",
      service: "web",
      stack_instance: "shop",
    };
    const create = await servicePolicyFilter(policy, { ...base, action: "create" }, { engine });
    assert.deepEqual(create.value, ["backup", "linux", "nginx"]);
    const del = await servicePolicyFilter(policy, { ...base, action: "delete" }, { engine });
    assert.deepEqual(del.value, ["linux", "nginx"]);
  });

  test("one template may define several contract rules; 1.x syntax is accepted too (auto)", async () => {
    const source = `package both

solutions := {"fulfilled": true, "targets": [k | some k, _ in input.infrastructure_targets]} if true

infringement contains {"msg": "never on mondays"} if input.parameters.monday
`;
    const compiled = await compile("both", source);
    assert.equal(compiled.regoVersion, "v1");
    assert.deepEqual(compiled.rules, ["solutions", "infringement"]);
    assert.deepEqual(compiled.entrypoints, ["both/solutions", "both/infringement"]);
    const policy: UserPolicy = { name: "both", bundle: compiled.bundle };
    const infr = await sitPolicyInfringements(
      policy,
      { ...webshopInput(), parameters: { monday: true }, target: "x" },
      { engine },
    );
    assert.deepEqual(infr.value, [{ msg: "never on mondays" }]);
    await rejectsWith(
      servicePolicyFilter(policy, {} as never, { engine }),
      "failed_precondition",
      /policy template "both" has no filter rule/,
    );
  });

  test("the package must equal the template name (field policy_template.policy)", async () => {
    const t = template("keep_in_location.yml");
    await rejectsWith(
      compileRegoPolicy({ name: "keep_in_zone", source: t.policy, opaPath }),
      "invalid_argument",
      /the Rego package is "keep_in_location" but the policy template is named "keep_in_zone"/,
      "policy_template.policy",
    );
  });

  test("syntax and compile errors name the line; no contract rule is an error", async () => {
    const syntax = await rejectsWith(
      compile("broken", "package broken\n\nsolutions = {\n"),
      "invalid_argument",
      /Rego does not parse as Rego v0: line 4: rego_parse_error: unexpected eof token/,
      "policy_template.policy",
    );
    assert.doesNotMatch(syntax.message, /stackl-rego-/, "no temp paths in messages");
    await rejectsWith(
      compile("typed", 'package typed\n\nsolutions = x { x := concat(1, "a") }\n'),
      "invalid_argument",
      /Rego does not compile: .*rego_type_error/s,
    );
    await rejectsWith(
      compile("empty", "package empty\n\nallow = true\n"),
      "invalid_argument",
      /defines none of the rules/,
    );
    await rejectsWith(
      compileRegoPolicy({
        name: "v1only",
        source: "package v1only\n\nsolutions = 1 { true }\n",
        opaPath,
        regoVersion: "v1",
      }),
      "invalid_argument",
      /Rego does not parse/,
    );
  });

  test("built-ins WebAssembly cannot run are rejected at compile time", async () => {
    await rejectsWith(
      compile("fetcher", 'package fetcher\n\nsolutions = r { r := http.send({"method": "get", "url": input.url}) }\n'),
      "invalid_argument",
      /built-in function http\.send, not available in WebAssembly/,
      "policy_template.policy",
    );
  });

  test("without opa: failed_precondition saying a prebuilt bundle may be supplied", async () => {
    await rejectsWith(
      compileRegoPolicy({ name: "x", source: "package x\n", opaPath: "/nonexistent/opa" }),
      "failed_precondition",
      /opa CLI is not installed .*prebuilt WebAssembly `bundle`/s,
    );
  });

  describe("timeouts and cancellation", () => {
    let dir: string;
    let slowOpa: string;
    before(() => {
      dir = mkdtempSync(path.join(tmpdir(), "stackl-slow-opa-"));
      slowOpa = path.join(dir, "opa");
      writeFileSync(slowOpa, "#!/bin/sh\nexec sleep 30\n");
      chmodSync(slowOpa, 0o755);
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    test("a hung opa is killed after timeoutMs", async () => {
      const started = Date.now();
      await rejectsWith(
        compileRegoPolicy({ name: "x", source: "package x\n", opaPath: slowOpa, timeoutMs: 200 }),
        "deadline_exceeded",
        /did not finish within 200 ms/,
      );
      assert.ok(Date.now() - started < 5_000);
    });

    test("an AbortSignal cancels the compilation", async () => {
      const controller = new AbortController();
      const pending = compileRegoPolicy({
        name: "x",
        source: "package x\n",
        opaPath: slowOpa,
        signal: controller.signal,
      });
      setTimeout(() => controller.abort(), 50);
      await rejectsWith(pending, "cancelled", /cancelled/);
      await rejectsWith(
        compileRegoPolicy({ name: "x", source: "package x\n", opaPath, signal: AbortSignal.abort() }),
        "cancelled",
        /cancelled/,
      );
    });
  });
});

describe("contract result validation (user policies returning malformed shapes)", () => {
  // One policy whose rules return whatever input.shape says.
  const SHAPES = `package shapes

solutions = input.shape { input.shape }
infringement = input.shape { input.shape }
filter = input.shape { input.shape }
`;
  let policy: UserPolicy;
  before(async () => {
    policy = { name: "shapes", bundle: (await compile("shapes", SHAPES)).bundle, outputs: ["x"] };
  });

  const sat = (shape: unknown) =>
    satPolicySolutions(policy, { ...webshopInput(), parameters: {}, shape } as never, { engine });

  test("SAT solutions", async () => {
    await rejectsWith(
      sat("yes"),
      "failed_precondition",
      /policy template "shapes" returned a malformed solutions result: solutions must be/,
    );
    await rejectsWith(
      sat({ fulfilled: "yes" }),
      "failed_precondition",
      /solutions\.fulfilled must be true or false, got "yes"/,
    );
    await rejectsWith(
      sat({ fulfilled: false }),
      "failed_precondition",
      /solutions\.msg must be a string when fulfilled is false/,
    );
    await rejectsWith(
      sat({ fulfilled: true, targets: "a.b.c" }),
      "failed_precondition",
      /solutions\.targets must be a list/,
    );
    const err = await rejectsWith(
      sat({ fulfilled: true, targets: ["a.b.c", 42, { name: "x" }] }),
      "failed_precondition",
      /solutions\.targets\[1\] must be a target key .*, got 42 \(and 1 more\)/,
    );
    assert.deepEqual(
      err.violations.map((v) => v.field),
      ["solutions.targets[1]", "solutions.targets[2]"],
    );
    assert.deepEqual(err.details, { policy: "shapes", rule: "solutions" });
    await rejectsWith(sat(false), "failed_precondition", /solutions is undefined for this input/);
    // Well-formed, with duplicates and outputs: de-duplicated, outputs kept.
    const ok = await sat({ fulfilled: true, targets: [{ target: "b", x: 1, y: 2 }, "a", { target: "b", x: 9 }] });
    assert.deepEqual(ok.value, {
      fulfilled: true,
      targets: [
        { target: "a", outputs: {} },
        { target: "b", outputs: { x: 1 } },
      ],
    });
  });

  test("SIT infringement and service filter", async () => {
    const sit = (shape: unknown) => sitPolicyInfringements(policy, { shape } as never, { engine });
    await rejectsWith(
      sit(["too big"]),
      "failed_precondition",
      /infringement\[0\] must be \{"msg": "<string>"\}, got "too big"/,
    );
    await rejectsWith(sit({ msg: "x" }), "failed_precondition", /infringement must be a set of/);
    assert.deepEqual((await sit(false)).value, [], "undefined = no infringement");
    assert.deepEqual((await sit([{ msg: "b" }, { msg: "a", extra: 1 }, { msg: "b" }])).value, [
      { msg: "a" },
      { msg: "b" },
    ]);

    const filter = (shape: unknown) => servicePolicyFilter(policy, { shape } as never, { engine });
    await rejectsWith(filter([1, "linux"]), "failed_precondition", /filter\[0\] must be a string, got 1/);
    await rejectsWith(filter(false), "failed_precondition", /filter is undefined for this input/);
    assert.deepEqual((await filter(["nginx", "linux"])).value, ["linux", "nginx"]);
  });

  test("a policy failing at run time (conflicting values) fails clearly; the next evaluation works", async () => {
    const source = "package conflict\n\nsolutions = x { x := input.a }\nsolutions = y { y := input.b }\n";
    const conflict: UserPolicy = { name: "conflict", bundle: (await compile("conflict", source)).bundle };
    await rejectsWith(
      satPolicySolutions(conflict, { a: 1, b: 2 } as never, { engine }),
      "failed_precondition",
      /policy template "conflict": evaluation of conflict\/solutions failed: .*var assignment conflict/,
    );
    const ok = await satPolicySolutions(
      conflict,
      { a: { fulfilled: false, msg: "m" }, b: { fulfilled: false, msg: "m" } } as never,
      { engine },
    );
    assert.deepEqual(ok.value, { fulfilled: false, msg: "m" });
  });

  test("a prebuilt bundle with data.json (opa build, no STACKL compiler): data is loaded into every instance", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "stackl-prebuilt-"));
    try {
      writeFileSync(
        path.join(dir, "policy.rego"),
        "package prebuilt\n\nfilter[fr] { fr := input.functional_requirements[_]; data.allowed[_] == fr }\n",
      );
      writeFileSync(path.join(dir, "data.json"), JSON.stringify({ allowed: ["linux", "nginx"] }));
      await runOpa(
        opaPath,
        [
          "build",
          "-t",
          "wasm",
          "--v0-compatible",
          "-e",
          "prebuilt/filter",
          "-o",
          "bundle.tar.gz",
          "policy.rego",
          "data.json",
        ],
        { cwd: dir },
      );
      const bundle = new Uint8Array(readFileSync(path.join(dir, "bundle.tar.gz")));
      const recycling = new PolicyEngine({ recycleAfterEvaluations: 2 });
      const policy: UserPolicy = { name: "prebuilt", bundle: await recycling.load(bundle) };
      for (let i = 0; i < 5; i++) {
        const { value } = await servicePolicyFilter(
          policy,
          { functional_requirements: ["linux", "backup", "nginx"] } as never,
          { engine: recycling },
        );
        assert.deepEqual(value, ["linux", "nginx"], `evaluation ${i} (instances recycled every 2)`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
