/**
 * Builds or checks the committed WebAssembly bundles of STACKL's built-in policies.
 *
 *   tsx scripts/build-policies.ts            compile src/policy/rego/*.rego → gen/policies/<name>.tar.gz + manifest.json
 *   tsx scripts/build-policies.ts --check    fail (exit 1) when a bundle no longer matches its source or the manifest
 *
 * Options: --root DIR (repository root; default: this checkout), --opa PATH (default: $STACKL_OPA, else the pinned
 * opa cached by scripts/tools.sh, else the first `opa` on PATH). --check without any opa compares hashes only.
 * Details: src/policy/build-builtin-policies.ts, src/policy/README.md.
 */
import { accessSync, constants, readFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildBuiltinPolicies, checkBuiltinPolicies } from "../src/policy/build-builtin-policies.js";
import { findOpa } from "../src/policy/opa-cli.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function usage(message: string): never {
  process.stderr.write(
    `build-policies: ${message}\nusage: tsx scripts/build-policies.ts [--check] [--root DIR] [--opa PATH]\n`,
  );
  process.exit(2);
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The pinned opa that scripts/tools.sh caches, if present. */
function pinnedOpa(): string | undefined {
  try {
    const versions = readFileSync(path.join(repoRoot, "scripts", "versions.env"), "utf8");
    const version = /^OPA_VERSION=(\S+)$/m.exec(versions)?.[1];
    if (version === undefined) return undefined;
    const dir = process.env.STACKL_TOOLS_DIR || path.join(homedir(), ".cache", "stackl-tools");
    const file = path.join(dir, `opa-${version}`, "bin", "opa");
    return isExecutable(file) ? file : undefined;
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  let check = false;
  let root = repoRoot;
  let opa: string | undefined = process.env.STACKL_OPA || undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--check") check = true;
    else if (a === "--root") root = path.resolve(args[++i] ?? usage("--root needs a directory"));
    else if (a === "--opa") opa = args[++i] ?? usage("--opa needs a path");
    else usage(`unknown argument ${a}`);
  }
  opa ??= pinnedOpa() ?? findOpa();
  const log = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };

  if (check) {
    const result = await checkBuiltinPolicies({ root, opaPath: opa, log });
    for (const note of result.notes) log(`note: ${note}`);
    for (const problem of result.problems) process.stderr.write(`build-policies --check: ${problem}\n`);
    if (result.ok) log("built-in policy bundles match their sources");
    return result.ok ? 0 : 1;
  }
  if (opa === undefined) {
    process.stderr.write("build-policies: the opa CLI is not installed: run scripts/tools.sh opa\n");
    return 1;
  }
  await buildBuiltinPolicies({ root, opaPath: opa, log });
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`build-policies: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
