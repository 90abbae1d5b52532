// scripts/build-policies.ts: the committed bundles match their sources; a rebuild with the same opa is
// byte-identical; --check fails after a source edit, a bundle edit or a manifest edit (on temp copies).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, beforeEach, describe, test } from "node:test";
import { buildBuiltinPolicies, checkBuiltinPolicies } from "../../../src/policy/build-builtin-policies.js";
import {
  BUILTIN_MANIFEST,
  BUILTIN_POLICIES,
  defaultRepoRoot,
  readBuiltinManifest,
} from "../../../src/policy/builtin-policies.js";
import { toolPath } from "../../support/tools.js";

const opaPath = toolPath("opa");
const script = path.join(defaultRepoRoot, "scripts", "build-policies.ts");
const temps: string[] = [];

/** A temp repository root holding copies of the policy sources, bundles and manifest. */
function copyRoot(): string {
  const root = mkdtempSync(path.join(tmpdir(), "stackl-policies-root-"));
  temps.push(root);
  const files = [BUILTIN_MANIFEST, ...Object.values(BUILTIN_POLICIES).flatMap((p) => [p.source, p.bundle])];
  for (const file of files) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    copyFileSync(path.join(defaultRepoRoot, file), path.join(root, file));
  }
  return root;
}

/** Runs the script as CI would (node + tsx), returning exit code and output. */
function runScript(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", script, "--opa", opaPath, ...args], {
    cwd: defaultRepoRoot,
    encoding: "utf8",
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

after(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

describe("built-in policy bundles", () => {
  test("the committed bundles match their sources (recompiled with the pinned opa, byte for byte)", async () => {
    const result = await checkBuiltinPolicies({ root: defaultRepoRoot, opaPath });
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.notes, [], "same opa version as the manifest: full comparison");
    assert.equal(result.ok, true);
  });

  test("the manifest records hashes, entrypoints, rego version and the opa version", () => {
    const manifest = readBuiltinManifest();
    assert.match(manifest.opa_version, /^\d+\.\d+\.\d+/);
    assert.deepEqual(Object.keys(manifest.policies).sort(), ["authz", "orchestration", "replicas"]);
    for (const [name, entry] of Object.entries(manifest.policies)) {
      assert.match(entry.source_sha256, /^[0-9a-f]{64}$/, name);
      assert.match(entry.bundle_sha256, /^[0-9a-f]{64}$/, name);
      assert.equal(entry.rego_version, "v1");
      assert.deepEqual(entry.entrypoints, BUILTIN_POLICIES[name as keyof typeof BUILTIN_POLICIES].entrypoints);
    }
  });

  describe("on a temp copy", () => {
    let root: string;
    beforeEach(() => {
      root = copyRoot();
    });

    test("a rebuild reproduces the committed bundles and manifest exactly", async () => {
      await buildBuiltinPolicies({ root, opaPath });
      for (const spec of Object.values(BUILTIN_POLICIES)) {
        assert.deepEqual(
          readFileSync(path.join(root, spec.bundle)),
          readFileSync(path.join(defaultRepoRoot, spec.bundle)),
          spec.bundle,
        );
      }
      assert.equal(
        readFileSync(path.join(root, BUILTIN_MANIFEST), "utf8"),
        readFileSync(path.join(defaultRepoRoot, BUILTIN_MANIFEST), "utf8"),
      );
    });

    test("--check fails after a source edit, and passes again after a rebuild", async () => {
      const source = path.join(root, BUILTIN_POLICIES.replicas.source);
      writeFileSync(source, `${readFileSync(source, "utf8")}\n# an edit\n`);
      const result = await checkBuiltinPolicies({ root, opaPath });
      assert.equal(result.ok, false);
      assert.equal(result.problems.length, 1, result.problems.join("\n"));
      assert.match(
        result.problems[0] ?? "",
        /src\/policy\/rego\/replicas\.rego changed since gen\/policies\/replicas\.tar\.gz was built/,
      );

      const cli = runScript(["--check", "--root", root]);
      assert.equal(cli.status, 1, cli.stdout + cli.stderr);
      assert.match(cli.stderr, /replicas\.rego changed since/);

      const rebuilt = runScript(["--root", root]);
      assert.equal(rebuilt.status, 0, rebuilt.stderr);
      assert.match(rebuilt.stdout, /built gen\/policies\/replicas\.tar\.gz/);
      const again = runScript(["--check", "--root", root]);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, /built-in policy bundles match their sources/);
    });

    test("--check fails when a committed bundle was altered, or the manifest lies", async () => {
      const bundle = path.join(root, BUILTIN_POLICIES.authz.bundle);
      const bytes = readFileSync(bundle);
      bytes.writeUInt8((bytes.at(-1) ?? 0) ^ 0xff, bytes.length - 1);
      writeFileSync(bundle, bytes);
      const altered = await checkBuiltinPolicies({ root, opaPath });
      assert.equal(altered.ok, false);
      assert.ok(altered.problems.some((p) => /authz\.tar\.gz does not match gen\/policies\/manifest\.json/.test(p)));

      const manifestFile = path.join(root, BUILTIN_MANIFEST);
      const manifest = JSON.parse(readFileSync(manifestFile, "utf8"));
      manifest.policies.orchestration.entrypoints = ["orchestration/solutions"];
      writeFileSync(manifestFile, JSON.stringify(manifest));
      const lying = await checkBuiltinPolicies({ root, opaPath });
      assert.ok(
        lying.problems.some((p) => /orchestration: manifest entrypoints/.test(p)),
        lying.problems.join("\n"),
      );
    });

    test("--check fails when a source no longer compiles (hash updated to match)", async () => {
      const source = path.join(root, BUILTIN_POLICIES.authz.source);
      const broken = readFileSync(source, "utf8").replace("default allow := false", "default allow := ");
      writeFileSync(source, broken);
      const manifestFile = path.join(root, BUILTIN_MANIFEST);
      const manifest = JSON.parse(readFileSync(manifestFile, "utf8"));
      const { createHash } = await import("node:crypto");
      manifest.policies.authz.source_sha256 = createHash("sha256").update(broken).digest("hex");
      writeFileSync(manifestFile, JSON.stringify(manifest));
      const result = await checkBuiltinPolicies({ root, opaPath });
      assert.equal(result.ok, false);
      assert.ok(
        result.problems.some((p) => /authz\.rego does not compile/.test(p)),
        result.problems.join("\n"),
      );
    });

    test("without opa, --check compares hashes only and says so", async () => {
      const result = await checkBuiltinPolicies({ root, opaPath: undefined });
      assert.equal(result.ok, true);
      assert.match(result.notes[0] ?? "", /opa is not installed: sources were not recompiled/);
    });
  });
});
