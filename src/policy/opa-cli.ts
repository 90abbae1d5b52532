/**
 * Running the `opa` CLI (a Go binary; not on npm): locating it, running it with a timeout and an AbortSignal, and
 * `opa build -t wasm`. Used by the Rego compiler (user policy templates) and by scripts/build-policies.ts.
 */
import { execFile } from "node:child_process";
import { accessSync, constants } from "node:fs";
import path from "node:path";
import { ErrorCode, StacklError } from "../errors.js";

/** Time an `opa` invocation may take before it is killed. */
export const DEFAULT_OPA_TIMEOUT_MS = 30_000;
/** Output kept from one `opa` invocation. */
const MAX_OPA_OUTPUT_BYTES = 32 * 1024 * 1024;

/** The first executable `opa` on `searchPath` (default: $PATH), or undefined. */
export function findOpa(searchPath: string = process.env.PATH ?? ""): string | undefined {
  for (const dir of searchPath.split(path.delimiter)) {
    if (dir === "") continue;
    const file = path.join(dir, "opa");
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface RunOpaOptions {
  /** Working directory. */
  cwd?: string;
  /** @default 30_000 (DEFAULT_OPA_TIMEOUT_MS) */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface OpaOutput {
  readonly stdout: string;
  readonly stderr: string;
}

/** Non-zero exit of `opa`: the command failed on its input (a compile error, usually). */
export class OpaCommandError extends Error {
  override readonly name = "OpaCommandError";
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
  constructor(args: readonly string[], exitCode: number | null, stdout: string, stderr: string) {
    super(`opa ${args[0] ?? ""} exited with ${exitCode}: ${(stderr || stdout).trim()}`);
    this.exitCode = exitCode;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

/**
 * Runs `opa <args>`. Throws OpaCommandError on a non-zero exit and StacklError for everything else:
 * `failed_precondition` when the binary is missing, `deadline_exceeded` on timeout, `cancelled` on abort.
 */
export function runOpa(opaPath: string, args: readonly string[], options: RunOpaOptions = {}): Promise<OpaOutput> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_OPA_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    execFile(
      opaPath,
      [...args],
      {
        cwd: options.cwd,
        timeout: timeoutMs,
        killSignal: "SIGKILL",
        maxBuffer: MAX_OPA_OUTPUT_BYTES,
        signal: options.signal,
        encoding: "utf8",
        env: { ...process.env, OPA_TELEMETRY: "false" },
      },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ stdout, stderr });
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: string | number | null };
        if (e.name === "AbortError" || options.signal?.aborted) {
          reject(new StacklError(ErrorCode.Cancelled, `opa ${args[0] ?? ""} was cancelled`, { cause: err }));
        } else if (e.code === "ENOENT" || e.code === "EACCES") {
          reject(opaMissing(opaPath, err));
        } else if (e.killed === true) {
          reject(
            new StacklError(ErrorCode.DeadlineExceeded, `opa ${args[0] ?? ""} did not finish within ${timeoutMs} ms`, {
              cause: err,
            }),
          );
        } else if (e.code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER") {
          reject(
            new StacklError(ErrorCode.ResourceExhausted, `opa ${args[0] ?? ""} wrote too much output`, { cause: err }),
          );
        } else {
          reject(new OpaCommandError(args, typeof e.code === "number" ? e.code : null, stdout, stderr));
        }
      },
    );
  });
}

/** The StacklError for "no opa here". */
export function opaMissing(looked: string | undefined, cause?: unknown): StacklError {
  const where = looked === undefined ? "on PATH" : `at ${looked}`;
  return new StacklError(
    ErrorCode.FailedPrecondition,
    `the opa CLI is not installed (looked ${where}), so Rego source cannot be compiled here: install opa ` +
      "(scripts/tools.sh opa) where policies are applied, or supply a prebuilt WebAssembly `bundle` " +
      "(opa build -t wasm --v0-compatible -e <package>/<rule>) in the policy template instead",
    { cause, details: { reason: "opa_not_installed" } },
  );
}

const versions = new Map<string, Promise<string>>();

/** `1.22.2` for an opa printing `Version: 1.22.2` (cached per binary). */
export function opaVersion(opaPath: string, options: RunOpaOptions = {}): Promise<string> {
  let v = versions.get(opaPath);
  if (v === undefined) {
    v = runOpa(opaPath, ["version"], options).then(({ stdout }) => {
      const m = /^Version:\s*(\S+)/m.exec(stdout);
      if (m?.[1] === undefined) throw new Error(`cannot read the version from \`opa version\`: ${stdout.trim()}`);
      return m[1];
    });
    v.catch(() => versions.delete(opaPath));
    versions.set(opaPath, v);
  }
  return v;
}

export interface OpaBuildWasmOptions extends RunOpaOptions {
  opaPath: string;
  /** Rego files to compile. */
  sources: readonly string[];
  /** `pkg/rule` entrypoints. */
  entrypoints: readonly string[];
  /** Output bundle (tar.gz). */
  output: string;
  /** "v0" adds `--v0-compatible` (pre-1.0 syntax); "v1" compiles as OPA 1.x does by default. */
  regoVersion: "v0" | "v1";
}

/** `opa build -t wasm [--v0-compatible] -e … -o output sources…`. */
export async function opaBuildWasm(o: OpaBuildWasmOptions): Promise<void> {
  const args = ["build", "-t", "wasm"];
  if (o.regoVersion === "v0") args.push("--v0-compatible");
  for (const e of o.entrypoints) args.push("-e", e);
  args.push("-o", o.output, ...o.sources);
  await runOpa(o.opaPath, args, o);
}
