/**
 * STACKL's built-in policies: Rego v1 sources in `src/policy/rego/`, compiled by `scripts/build-policies.ts` into
 * bundles committed as `gen/policies/<name>.tar.gz`, with `gen/policies/manifest.json` recording the SHA-256 of each
 * source and bundle. Loading verifies the bundle's SHA-256 against the manifest.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ErrorCode, StacklError } from "../errors.js";
import { sha256Hex } from "./policy-bundle.js";
import type { CompiledPolicy, PolicyEngine } from "./policy-engine.js";

export type BuiltinPolicyName = "orchestration" | "replicas" | "authz";

export const BUILTIN_POLICY_NAMES: readonly BuiltinPolicyName[] = ["orchestration", "replicas", "authz"];

export interface BuiltinPolicySpec {
  readonly name: BuiltinPolicyName;
  /** Rego package. */
  readonly packageName: string;
  /** Source, relative to the repository root. */
  readonly source: string;
  /** Bundle, relative to the repository root. */
  readonly bundle: string;
  /** Entrypoints compiled into the module (`opa build -e`), sorted. */
  readonly entrypoints: readonly string[];
  /** Rego syntax of the source (built-ins are v1; `--v0-compatible` is for users' pre-1.0 templates). */
  readonly regoVersion: "v1";
}

export const BUILTIN_POLICIES: Readonly<Record<BuiltinPolicyName, BuiltinPolicySpec>> = {
  orchestration: {
    name: "orchestration",
    packageName: "orchestration",
    source: "src/policy/rego/orchestration.rego",
    bundle: "gen/policies/orchestration.tar.gz",
    entrypoints: [
      "orchestration/rejection_groups",
      "orchestration/rejections",
      "orchestration/solution_groups",
      "orchestration/solutions",
    ],
    regoVersion: "v1",
  },
  replicas: {
    name: "replicas",
    packageName: "replicas",
    source: "src/policy/rego/replicas.rego",
    bundle: "gen/policies/replicas.tar.gz",
    entrypoints: ["replicas/solutions"],
    regoVersion: "v1",
  },
  authz: {
    name: "authz",
    packageName: "stackl.authz",
    source: "src/policy/rego/authz.rego",
    bundle: "gen/policies/authz.tar.gz",
    entrypoints: ["stackl/authz/allow", "stackl/authz/reason"],
    regoVersion: "v1",
  },
};

/** `gen/policies/manifest.json`, relative to the repository root. */
export const BUILTIN_MANIFEST = "gen/policies/manifest.json";

export interface BuiltinManifestEntry {
  readonly source: string;
  readonly source_sha256: string;
  readonly bundle: string;
  readonly bundle_sha256: string;
  readonly entrypoints: readonly string[];
  readonly rego_version: "v0" | "v1";
}

export interface BuiltinManifest {
  /** `opa version` that built the bundles, e.g. `1.22.2`. */
  readonly opa_version: string;
  readonly policies: Readonly<Record<string, BuiltinManifestEntry>>;
}

/** The repository root as seen from this module (`src/policy/` → `../..`). */
export const defaultRepoRoot: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

const bundleBytes = new Map<string, Uint8Array>();

/**
 * The committed bundle of a built-in policy, verified against the manifest (cached per root). Throws StacklError
 * `failed_precondition` when the bundle or the manifest is missing or they disagree.
 */
export function builtinBundle(name: BuiltinPolicyName, root: string = defaultRepoRoot): Uint8Array {
  const key = `${root}\0${name}`;
  const cached = bundleBytes.get(key);
  if (cached !== undefined) return cached;
  const spec = BUILTIN_POLICIES[name];
  const manifest = readBuiltinManifest(root);
  const entry = manifest.policies[name];
  if (entry === undefined) throw broken(`${BUILTIN_MANIFEST} has no entry for the built-in policy ${name}`);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path.join(root, spec.bundle));
  } catch (err) {
    throw broken(`cannot read ${spec.bundle}: ${(err as Error).message}`, err);
  }
  const sha = sha256Hex(bytes);
  if (sha !== entry.bundle_sha256) {
    throw broken(`${spec.bundle} has SHA-256 ${sha}, ${BUILTIN_MANIFEST} records ${entry.bundle_sha256}`);
  }
  bundleBytes.set(key, bytes);
  return bytes;
}

/** Loads (once per engine) the compiled built-in policy `name`. */
export function loadBuiltinPolicy(
  engine: PolicyEngine,
  name: BuiltinPolicyName,
  root: string = defaultRepoRoot,
): Promise<CompiledPolicy> {
  return engine.load(builtinBundle(name, root));
}

export function readBuiltinManifest(root: string = defaultRepoRoot): BuiltinManifest {
  let text: string;
  try {
    text = readFileSync(path.join(root, BUILTIN_MANIFEST), "utf8");
  } catch (err) {
    throw broken(`cannot read ${BUILTIN_MANIFEST}: ${(err as Error).message}`, err);
  }
  const parsed = JSON.parse(text) as BuiltinManifest;
  if (typeof parsed.opa_version !== "string" || typeof parsed.policies !== "object" || parsed.policies === null) {
    throw broken(`${BUILTIN_MANIFEST} is malformed`);
  }
  return parsed;
}

function broken(message: string, cause?: unknown): StacklError {
  return new StacklError(
    ErrorCode.FailedPrecondition,
    `built-in policies: ${message} (rebuild them with scripts/build-policies.ts)`,
    { cause },
  );
}
