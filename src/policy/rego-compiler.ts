/**
 * Compiles a user policy template's Rego source into an OPA WebAssembly bundle with the `opa` CLI, wherever it is
 * installed (the CLI at `stackl apply`, or the server). STACKL's templates are pre-1.0 Rego (`p = x { … }`,
 * `p[x] { … }`), compiled with `--v0-compatible`; 1.x syntax is accepted too (rego version "auto").
 *
 * Steps, in a private temp dir: `opa parse --format json` (syntax, package, which contract rules exist) → check the
 * package equals the template name → `opa build -t wasm -e <pkg>/<rule>…` → check every host built-in the module
 * imports is one opa-wasm or STACKL supplies. Every failure about the source is a StacklError `invalid_argument`
 * naming `fieldPath` (default `policy_template.policy`).
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ErrorCode, StacklError } from "../errors.js";
import { unsupportedBuiltins } from "./custom-builtins.js";
import {
  DEFAULT_OPA_TIMEOUT_MS,
  findOpa,
  OpaCommandError,
  opaBuildWasm,
  opaMissing,
  opaVersion,
  runOpa,
} from "./opa-cli.js";
import { readPolicyBundle, sha256Hex } from "./policy-bundle.js";
import { requiredBuiltins } from "./policy-engine.js";

/** The rules STACKL's contracts evaluate (reference §3.2): SAT, SIT and service policies. */
export type ContractRule = "solutions" | "infringement" | "filter";

export const CONTRACT_RULES: readonly ContractRule[] = ["solutions", "infringement", "filter"];

export type RegoVersion = "v0" | "v1";

export interface CompileRegoOptions {
  /** Policy template name; the Rego package must equal it. */
  name: string;
  /** Rego source. */
  source: string;
  /**
   * Rego syntax: "v0" (pre-1.0, `--v0-compatible`), "v1", or "auto": v0, and v1 if the source does not parse as v0.
   * @default "auto"
   */
  regoVersion?: RegoVersion | "auto";
  /**
   * The opa binary.
   * @default the first `opa` on PATH
   */
  opaPath?: string;
  /**
   * Limit for each opa invocation.
   * @default 30_000 (DEFAULT_OPA_TIMEOUT_MS)
   */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Field path named in errors about the source.
   * @default "policy_template.policy"
   */
  fieldPath?: string;
}

export interface CompiledRegoPolicy {
  /** The bundle (tar.gz) as `opa build -t wasm` wrote it. */
  readonly bundle: Uint8Array;
  /** SHA-256 of `bundle`, lower-case hex. */
  readonly sha256: string;
  /** Compiled entrypoints, `<package path>/<rule>`, in CONTRACT_RULES order. */
  readonly entrypoints: readonly string[];
  /** Contract rules the source defines, in CONTRACT_RULES order. */
  readonly rules: readonly ContractRule[];
  readonly packageName: string;
  /** The syntax the source compiled as. */
  readonly regoVersion: RegoVersion;
  /** The opa that compiled it, e.g. `1.22.2`. */
  readonly opaVersion: string;
  /** Host built-ins the module imports (all supplied), sorted. */
  readonly hostBuiltins: readonly string[];
}

/** Entrypoint of `rule` in package `packageName` (`a.b` → `a/b/rule`). */
export function entrypointOf(packageName: string, rule: string): string {
  return `${packageName.replaceAll(".", "/")}/${rule}`;
}

/** Compiles `options.source`; see the module comment. */
export async function compileRegoPolicy(options: CompileRegoOptions): Promise<CompiledRegoPolicy> {
  const field = options.fieldPath ?? "policy_template.policy";
  const opaPath = options.opaPath ?? findOpa();
  if (opaPath === undefined) throw opaMissing(undefined);
  const run = { timeoutMs: options.timeoutMs ?? DEFAULT_OPA_TIMEOUT_MS, signal: options.signal };
  if (options.signal?.aborted) throw new StacklError(ErrorCode.Cancelled, "policy compilation was cancelled");

  const dir = await mkdtemp(path.join(tmpdir(), "stackl-rego-"));
  try {
    // opa runs in `dir` on a relative path: it embeds the path in the bundle, so the same source compiled by the
    // same opa gives the same bundle (and SHA-256) wherever it is compiled.
    const sourceFile = "policy.rego";
    await writeFile(path.join(dir, sourceFile), options.source, "utf8");
    const invalid = (message: string, cause?: unknown): StacklError =>
      new StacklError(ErrorCode.InvalidArgument, `${field}: ${message}`, {
        violations: [{ field, message }],
        cause,
        details: { policy: options.name },
      });
    const opaMessage = (err: OpaCommandError): string =>
      formatOpaErrors(err.stderr || err.stdout, sourceFile, dir).message;

    // 1. Parse: syntax version, package, rules.
    const versions: RegoVersion[] =
      options.regoVersion === undefined || options.regoVersion === "auto" ? ["v0", "v1"] : [options.regoVersion];
    let parsed: { ast: RegoAst; regoVersion: RegoVersion } | undefined;
    const parseErrors: Array<{ version: RegoVersion; message: string; row: number }> = [];
    for (const version of versions) {
      const args = ["parse", "--format", "json", "--json-include", "-comments"];
      if (version === "v0") args.push("--v0-compatible");
      try {
        const { stdout } = await runOpa(opaPath, [...args, sourceFile], { ...run, cwd: dir });
        parsed = { ast: JSON.parse(stdout) as RegoAst, regoVersion: version };
        break;
      } catch (err) {
        if (!(err instanceof OpaCommandError)) throw err;
        const { message, row } = formatOpaErrors(err.stderr || err.stdout, sourceFile, dir);
        parseErrors.push({ version, message, row });
      }
    }
    if (parsed === undefined) {
      // Report the syntax that got further (the one the author most likely meant); v0 on a tie.
      const best = parseErrors.reduce((a, b) => (b.row > a.row ? b : a));
      const as = versions.length > 1 ? ` as Rego ${best.version}` : "";
      throw invalid(`Rego does not parse${as}: ${best.message}`);
    }

    const packageName = packageOf(parsed.ast);
    if (packageName !== options.name) {
      throw invalid(
        `the Rego package is "${packageName}" but the policy template is named "${options.name}"; they must be equal`,
      );
    }
    const defined = new Set(ruleNames(parsed.ast));
    const rules = CONTRACT_RULES.filter((r) => defined.has(r));
    if (rules.length === 0) {
      throw invalid(
        "the policy defines none of the rules STACKL evaluates: solutions (SAT policy), infringement (SIT policy), " +
          "filter (service policy)",
      );
    }
    const entrypoints = rules.map((r) => entrypointOf(packageName, r));

    // 2. Build.
    const output = path.join(dir, "bundle.tar.gz");
    try {
      await opaBuildWasm({
        opaPath,
        sources: [sourceFile],
        entrypoints,
        output,
        regoVersion: parsed.regoVersion,
        ...run,
        cwd: dir,
      });
    } catch (err) {
      if (err instanceof OpaCommandError) throw invalid(`Rego does not compile: ${opaMessage(err)}`, err);
      throw err;
    }
    const bundle = new Uint8Array(await readFile(output));

    // 3. Host built-ins.
    const hostBuiltins = await requiredBuiltins(readPolicyBundle(bundle).wasm);
    const missing = unsupportedBuiltins(hostBuiltins);
    if (missing.length > 0) {
      throw invalid(
        `the policy uses built-in function${missing.length > 1 ? "s" : ""} ${missing.join(", ")}, not available ` +
          "in WebAssembly (opa-wasm supplies only sprintf, json.is_valid, regex.split and yaml.*; STACKL adds " +
          "units.parse_bytes)",
      );
    }

    return {
      bundle,
      sha256: sha256Hex(bundle),
      entrypoints,
      rules,
      packageName,
      regoVersion: parsed.regoVersion,
      opaVersion: await opaVersion(opaPath, run),
      hostBuiltins,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Errors shown at most. */
const MAX_ERRORS_SHOWN = 5;

/**
 * opa's errors as one line: `line 3:12: unexpected eof token; …`. `opa parse --format json` prints
 * `{"errors": [{message, code, location: {row, col}}]}`; `opa build` prints text (`policy.rego:3: rego_type_error: …`).
 */
function formatOpaErrors(output: string, sourceFile: string, dir: string): { message: string; row: number } {
  const text = output.trim();
  try {
    const parsed = JSON.parse(text) as {
      errors?: Array<{ message?: string; code?: string; location?: { row?: number; col?: number } }>;
    };
    if (Array.isArray(parsed.errors) && parsed.errors.length > 0) {
      const shown = parsed.errors.slice(0, MAX_ERRORS_SHOWN).map((e) => {
        const row = e.location?.row;
        const at = row === undefined ? "" : `line ${row}${e.location?.col ? `:${e.location.col}` : ""}: `;
        return `${at}${e.code ? `${e.code}: ` : ""}${e.message ?? "error"}`;
      });
      const more =
        parsed.errors.length > MAX_ERRORS_SHOWN ? ` (and ${parsed.errors.length - MAX_ERRORS_SHOWN} more)` : "";
      return { message: `${shown.join("; ")}${more}`, row: parsed.errors[0]?.location?.row ?? 0 };
    }
  } catch {
    // text output
  }
  const row = Number(/policy\.rego:(\d+)/.exec(text)?.[1] ?? 0);
  return {
    message: text
      .replaceAll(`${sourceFile}:`, "line ")
      .replaceAll(dir, ".")
      .replace(/\s*\n\s*/g, " "),
    row,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The parts of `opa parse --format json` read here.

interface AstTerm {
  readonly type: string;
  readonly value: unknown;
}

interface RegoAst {
  readonly package?: { readonly path?: readonly AstTerm[] };
  readonly rules?: ReadonlyArray<{ readonly head?: { readonly name?: string; readonly ref?: readonly AstTerm[] } }>;
}

/** `a.b` for `package a.b` (the AST path is `data`, then the parts). */
function packageOf(ast: RegoAst): string {
  const parts = (ast.package?.path ?? []).slice(1).map((t) => String(t.value));
  return parts.join(".");
}

/** Top-level names of the rules (`p` for `p = …`, `p[x] {…}`, `p contains x if …`, and `p.q := …`). */
function ruleNames(ast: RegoAst): string[] {
  const names: string[] = [];
  for (const rule of ast.rules ?? []) {
    const first = rule.head?.ref?.[0];
    const name = first?.type === "var" && typeof first.value === "string" ? first.value : rule.head?.name;
    if (name !== undefined && name !== "") names.push(name);
  }
  return names;
}
