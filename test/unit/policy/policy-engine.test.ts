// PolicyEngine: bundle reading, the compiled-policy cache, entrypoints, instance recycling, pre-encoded inputs.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { isStacklError } from "../../../src/errors.js";
import {
  BUILTIN_POLICIES,
  builtinBundle,
  defaultRepoRoot,
  readBuiltinManifest,
} from "../../../src/policy/builtin-policies.js";
import { readPolicyBundle, sha256Hex } from "../../../src/policy/policy-bundle.js";
import {
  DEFAULT_INITIAL_MEMORY_PAGES,
  EncodedInput,
  PolicyEngine,
  requiredBuiltins,
  spliceInput,
  WASM_PAGE_BYTES,
} from "../../../src/policy/policy-engine.js";
import { readTar, TarFormatError } from "../../../src/policy/tar-reader.js";
import { estate, webshopInput } from "./policy-fixtures.js";

describe("bundles", () => {
  test("reads a committed opa bundle: wasm, data, manifest entrypoints; SHA-256 matches the manifest", () => {
    const bytes = builtinBundle("orchestration");
    const bundle = readPolicyBundle(bytes);
    assert.ok(bundle.entrypoints.includes("orchestration/solutions"));
    assert.deepEqual([...bundle.entrypoints].sort(), [...BUILTIN_POLICIES.orchestration.entrypoints].sort());
    assert.deepEqual(bundle.data, {});
    assert.equal(bundle.regoVersion, 1);
    assert.deepEqual([...bundle.wasm.subarray(0, 4)], [0x00, 0x61, 0x73, 0x6d]);
    assert.equal(bundle.sha256, readBuiltinManifest().policies.orchestration?.bundle_sha256);
    assert.equal(
      bundle.sha256,
      sha256Hex(readFileSync(path.join(defaultRepoRoot, "gen/policies/orchestration.tar.gz"))),
    );
  });

  test("the tar reader handles GNU tar's long names and pax headers", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "stackl-tar-"));
    try {
      const long = `${"d".repeat(60)}/${"e".repeat(60)}/${"f".repeat(70)}.json`;
      execFileSync("mkdir", ["-p", path.join(dir, "src", path.dirname(long))]);
      writeFileSync(path.join(dir, "src", long), '{"long": true}');
      writeFileSync(path.join(dir, "src", "policy.wasm"), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
      for (const format of ["gnu", "pax", "ustar"]) {
        const archive = path.join(dir, `${format}.tar`);
        const files = format === "ustar" ? ["policy.wasm"] : ["policy.wasm", long];
        execFileSync("tar", [`--format=${format}`, "-cf", archive, "-C", path.join(dir, "src"), ...files]);
        const entries = readTar(new Uint8Array(readFileSync(archive)));
        const byPath = new Map(entries.map((e) => [e.path, e.bytes]));
        assert.deepEqual([...(byPath.get("policy.wasm") ?? [])], [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0], format);
        if (format !== "ustar") assert.equal(new TextDecoder().decode(byPath.get(long)), '{"long": true}', format);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("rejects what is not a bundle, with the field path", () => {
    for (const bad of [
      new TextEncoder().encode("not gzip"),
      gzipSync(Buffer.from("x".repeat(1024))),
      gzipSync(Buffer.alloc(1024)), // an empty tar: no policy.wasm
    ]) {
      assert.throws(
        () => readPolicyBundle(bad, "policy_template.bundle"),
        (err: unknown) =>
          isStacklError(err, "invalid_argument") && err.violations[0]?.field === "policy_template.bundle",
      );
    }
    const corrupt = new Uint8Array(1024);
    corrupt[0] = 0x41; // a header with a bad checksum
    assert.throws(() => readTar(corrupt), TarFormatError);
  });

  test("host built-ins the built-in policies import: units.parse_bytes for orchestration, nothing else", async () => {
    const imports = async (name: "orchestration" | "replicas" | "authz") =>
      requiredBuiltins(readPolicyBundle(builtinBundle(name)).wasm);
    assert.deepEqual(await imports("orchestration"), ["units.parse_bytes"]);
    assert.deepEqual(await imports("replicas"), []);
    assert.deepEqual(await imports("authz"), []);
  });
});

describe("PolicyEngine", () => {
  test("caches compiled policies by bundle SHA-256, least recently used evicted", async () => {
    const engine = new PolicyEngine({ maxCachedPolicies: 2 });
    const a = await engine.load(builtinBundle("orchestration"));
    assert.equal(await engine.load(new Uint8Array(builtinBundle("orchestration"))), a, "same bytes, same policy");
    assert.equal(await engine.get(a.sha256), a);
    const b = await engine.load(builtinBundle("replicas"));
    await engine.load(builtinBundle("orchestration")); // touch a: b is now the least recently used
    await engine.load(builtinBundle("authz"));
    assert.equal(engine.size, 2);
    assert.equal(await engine.get(b.sha256), undefined);
    assert.equal(await engine.get(a.sha256), a);
  });

  test("evaluate: result, defined, duration; unknown entrypoints are invalid_argument", async () => {
    const engine = new PolicyEngine();
    const policy = await engine.load(builtinBundle("authz"));
    assert.deepEqual(policy.entrypoints, ["stackl/authz/allow", "stackl/authz/reason"]);
    const ev = policy.evaluate("stackl/authz/allow", { principal: { name: "local" }, rpc: "a.B/C" });
    assert.equal(ev.result, true);
    assert.equal(ev.defined, true);
    assert.ok(ev.durationMs >= 0 && ev.durationMs < 1000);
    assert.throws(
      () => policy.evaluate("stackl/authz/deny", {}),
      (err: unknown) =>
        isStacklError(err, "invalid_argument") && /has no entrypoint "stackl\/authz\/deny"/.test(err.message),
    );
  });

  test("recycles the instance every recycleAfterEvaluations evaluations", async () => {
    const engine = new PolicyEngine({ recycleAfterEvaluations: 100 });
    const policy = await engine.load(builtinBundle("orchestration"));
    const input = webshopInput();
    const expected = policy.evaluate("orchestration/solutions", input).result;
    for (let i = 0; i < 349; i++) {
      assert.deepEqual(policy.evaluate("orchestration/solutions", input).result, expected);
    }
    assert.deepEqual(policy.stats(), {
      evaluations: 350,
      recycles: 3,
      instanceEvaluations: 50,
      memoryBytes: DEFAULT_INITIAL_MEMORY_PAGES * WASM_PAGE_BYTES,
    });
  });

  test("recycles an instance whose memory passed the threshold (one large input does not pin memory)", async () => {
    const threshold = 8 * 1024 * 1024;
    const engine = new PolicyEngine({ recycleAboveMemoryBytes: threshold });
    const policy = await engine.load(builtinBundle("orchestration"));
    const small = webshopInput();
    policy.evaluate("orchestration/solutions", small);
    const initial = policy.stats().memoryBytes;
    const large = estate({ services: 50, targets: 2000 });
    const big = policy.evaluate<{ fulfilled: boolean }>("orchestration/solutions", large);
    assert.equal(big.result?.fulfilled, true);
    const after = policy.stats();
    assert.equal(after.recycles, 1, "the large evaluation grew memory past the threshold");
    assert.equal(after.memoryBytes, initial, "back to a fresh instance");
    assert.ok(policy.evaluate("orchestration/solutions", small).defined);

    // Without the threshold the memory stays grown.
    const pinned = await new PolicyEngine({ recycleAboveMemoryBytes: 2 ** 40 }).load(builtinBundle("orchestration"));
    pinned.evaluate("orchestration/solutions", large);
    pinned.evaluate("orchestration/solutions", small);
    assert.ok(pinned.stats().memoryBytes > threshold, `pinned memory ${pinned.stats().memoryBytes}`);
  });

  test("spliceInput adds top-level members to an encoded object without decoding it", () => {
    const base = EncodedInput.of({ services: { a: 1 }, stack_instance: "x" });
    const spliced = spliceInput(base, { target: "e.l.z", parameters: { p: [1] } });
    assert.deepEqual(JSON.parse(new TextDecoder().decode(spliced.bytes)), {
      target: "e.l.z",
      parameters: { p: [1] },
      services: { a: 1 },
      stack_instance: "x",
    });
    assert.deepEqual(JSON.parse(new TextDecoder().decode(spliceInput(EncodedInput.of({}), { a: 1 }).bytes)), {
      a: 1,
    });
    assert.equal(spliceInput(base, {}), base);
    assert.throws(() => spliceInput(EncodedInput.fromJson("[1]"), { a: 1 }), TypeError);
  });

  test("option validation", () => {
    assert.throws(() => new PolicyEngine({ recycleAfterEvaluations: 0 }), RangeError);
    assert.throws(() => new PolicyEngine({ initialMemoryPages: 64, maximumMemoryPages: 32 }), RangeError);
  });
});
