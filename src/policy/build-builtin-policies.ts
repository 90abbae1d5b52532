/**
 * Builds and checks the committed bundles of the built-in policies (driven by scripts/build-policies.ts).
 *
 * build: `opa build -t wasm -e …` each source of BUILTIN_POLICIES into `gen/policies/<name>.tar.gz`, verify the
 * module imports no host built-in that opa-wasm/STACKL lacks, and write `gen/policies/manifest.json` (opa version;
 * per policy: source and bundle paths and SHA-256, entrypoints, Rego version).
 *
 * check: fails when a source's SHA-256 differs from the manifest (the source changed, the bundle was not rebuilt),
 * a committed bundle's SHA-256 differs from the manifest (edited or corrupted), the manifest's entrypoints or policy
 * set differ from BUILTIN_POLICIES, or a source no longer compiles. It recompiles every source into a temp dir; when
 * the installed opa is the version recorded in the manifest, the rebuilt bundle must also be byte-identical (opa
 * builds are reproducible: fixed mtimes, sorted entries); with another opa version only the hashes are compared.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  BUILTIN_MANIFEST,
  BUILTIN_POLICIES,
  BUILTIN_POLICY_NAMES,
  type BuiltinManifest,
  type BuiltinManifestEntry,
  type BuiltinPolicySpec,
  readBuiltinManifest,
} from "./builtin-policies.js";
import { unsupportedBuiltins } from "./custom-builtins.js";
import { opaBuildWasm, opaVersion } from "./opa-cli.js";
import { readPolicyBundle, sha256Hex } from "./policy-bundle.js";
import { requiredBuiltins } from "./policy-engine.js";

export interface BuildPoliciesOptions {
  /** Repository root (sources and gen/policies are relative to it). */
  root: string;
  /** The opa binary. */
  opaPath: string;
  /** Progress lines. @default no output */
  log?: (line: string) => void;
}

/** Compiles one built-in policy into `output`; returns the bundle bytes. */
async function compileBuiltin(spec: BuiltinPolicySpec, root: string, opaPath: string, output: string) {
  await opaBuildWasm({
    opaPath,
    // Relative to cwd: opa embeds the path in the bundle, so an absolute one would differ between checkouts.
    sources: [spec.source],
    entrypoints: spec.entrypoints,
    output,
    regoVersion: spec.regoVersion,
    cwd: root,
  });
  const bytes = new Uint8Array(await readFile(output));
  const bundle = readPolicyBundle(bytes, spec.bundle);
  const missing = unsupportedBuiltins(await requiredBuiltins(bundle.wasm));
  if (missing.length > 0) {
    throw new Error(`${spec.source} uses built-ins not available in WebAssembly: ${missing.join(", ")}`);
  }
  const declared = [...bundle.entrypoints].sort();
  if (declared.join(",") !== [...spec.entrypoints].sort().join(",")) {
    throw new Error(`${spec.bundle}: entrypoints ${declared.join(", ")} differ from ${spec.entrypoints.join(", ")}`);
  }
  return bytes;
}

/** Builds every bundle and the manifest. */
export async function buildBuiltinPolicies(o: BuildPoliciesOptions): Promise<BuiltinManifest> {
  const log = o.log ?? (() => {});
  const version = await opaVersion(o.opaPath);
  const policies: Record<string, BuiltinManifestEntry> = {};
  for (const name of BUILTIN_POLICY_NAMES) {
    const spec = BUILTIN_POLICIES[name];
    const output = path.join(o.root, spec.bundle);
    const bytes = await compileBuiltin(spec, o.root, o.opaPath, output);
    const source = await readFile(path.join(o.root, spec.source));
    policies[name] = {
      source: spec.source,
      source_sha256: sha256Hex(source),
      bundle: spec.bundle,
      bundle_sha256: sha256Hex(bytes),
      entrypoints: [...spec.entrypoints],
      rego_version: spec.regoVersion,
    };
    log(`built ${spec.bundle} (${bytes.length} bytes, sha256 ${sha256Hex(bytes).slice(0, 16)}…) from ${spec.source}`);
  }
  const manifest: BuiltinManifest = { opa_version: version, policies };
  await writeFile(path.join(o.root, BUILTIN_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  log(`wrote ${BUILTIN_MANIFEST} (opa ${version})`);
  return manifest;
}

export interface CheckPoliciesOptions {
  root: string;
  /** The opa binary; without one the sources are not recompiled (hash checks only) and a note says so. */
  opaPath: string | undefined;
  log?: (line: string) => void;
}

export interface CheckPoliciesResult {
  readonly ok: boolean;
  /** One line per problem. */
  readonly problems: readonly string[];
  /** Informational lines (what was compared). */
  readonly notes: readonly string[];
}

/** Checks the committed bundles against their sources; see the module comment. */
export async function checkBuiltinPolicies(o: CheckPoliciesOptions): Promise<CheckPoliciesResult> {
  const problems: string[] = [];
  const notes: string[] = [];
  let manifest: BuiltinManifest;
  try {
    manifest = readBuiltinManifest(o.root);
  } catch (err) {
    return { ok: false, problems: [(err as Error).message], notes };
  }

  const names = new Set<string>(BUILTIN_POLICY_NAMES);
  for (const name of Object.keys(manifest.policies)) {
    if (!names.has(name)) problems.push(`${BUILTIN_MANIFEST} lists ${name}, which is not a built-in policy`);
  }

  const installed = o.opaPath === undefined ? undefined : await opaVersion(o.opaPath);
  if (installed === undefined) notes.push("opa is not installed: sources were not recompiled (hash checks only)");
  else if (installed !== manifest.opa_version) {
    notes.push(
      `opa ${installed} is installed, the bundles were built by opa ${manifest.opa_version}: ` +
        "recompiled for errors only, not compared byte for byte",
    );
  }

  const tmp = await mkdtemp(path.join(tmpdir(), "stackl-policies-"));
  try {
    for (const name of BUILTIN_POLICY_NAMES) {
      const spec = BUILTIN_POLICIES[name];
      const entry = manifest.policies[name];
      if (entry === undefined) {
        problems.push(`${BUILTIN_MANIFEST} has no entry for ${name}: run scripts/build-policies.ts`);
        continue;
      }
      const source = await readOrUndefined(path.join(o.root, spec.source));
      const bundle = await readOrUndefined(path.join(o.root, spec.bundle));
      if (source === undefined) problems.push(`${spec.source} is missing`);
      else if (sha256Hex(source) !== entry.source_sha256) {
        problems.push(
          `${spec.source} changed since ${spec.bundle} was built (sha256 ${sha256Hex(source)}, manifest ` +
            `${entry.source_sha256}): run scripts/build-policies.ts and commit gen/policies/`,
        );
      }
      if (bundle === undefined) problems.push(`${spec.bundle} is missing`);
      else if (sha256Hex(bundle) !== entry.bundle_sha256) {
        problems.push(
          `${spec.bundle} does not match ${BUILTIN_MANIFEST} (sha256 ${sha256Hex(bundle)}, manifest ` +
            `${entry.bundle_sha256}): it was edited or corrupted; run scripts/build-policies.ts`,
        );
      }
      if ([...entry.entrypoints].sort().join(",") !== [...spec.entrypoints].sort().join(",")) {
        problems.push(
          `${name}: manifest entrypoints ${entry.entrypoints.join(", ")} differ from ${spec.entrypoints.join(", ")}`,
        );
      }
      if (o.opaPath === undefined || source === undefined) continue;
      let rebuilt: Uint8Array;
      try {
        rebuilt = await compileBuiltin(spec, o.root, o.opaPath, path.join(tmp, `${name}.tar.gz`));
      } catch (err) {
        problems.push(`${spec.source} does not compile: ${(err as Error).message}`);
        continue;
      }
      if (installed === manifest.opa_version && bundle !== undefined && sha256Hex(rebuilt) !== sha256Hex(bundle)) {
        problems.push(
          `${spec.bundle} differs from a rebuild of ${spec.source} with the same opa ${installed}: ` +
            "run scripts/build-policies.ts",
        );
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { ok: problems.length === 0, problems, notes };
}

async function readOrUndefined(file: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
