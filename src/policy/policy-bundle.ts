/**
 * OPA WebAssembly bundles, as `opa build -t wasm` writes them: a tar.gz holding `/policy.wasm`, `/data.json` and
 * `/.manifest` (`{"wasm": [{"entrypoint": "pkg/rule", "module": "/policy.wasm"}], "rego_version": 1, …}`). A bundle is
 * identified by the SHA-256 of its tar.gz bytes.
 */
import { createHash } from "node:crypto";
import { ErrorCode, StacklError } from "../errors.js";
import { readTarGz, TarFormatError } from "./tar-reader.js";
import { WebAssemblyApi } from "./wasm-api.js";

export interface PolicyBundle {
  /** Lower-case hex SHA-256 of the tar.gz bytes. */
  readonly sha256: string;
  /** The tar.gz bytes themselves. */
  readonly bytes: Uint8Array;
  readonly wasm: Uint8Array;
  /** `data.json` (`{}` when absent): loaded into every instance with `setData`. */
  readonly data: unknown;
  /** Entrypoints the manifest declares (`pkg/rule`), in manifest order. */
  readonly entrypoints: readonly string[];
  /** `rego_version` of the manifest (0 or 1) when recorded. */
  readonly regoVersion: number | undefined;
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Reads a bundle. Throws StacklError `invalid_argument` (field `fieldPath`) when it is not a single-module OPA
 * WebAssembly bundle.
 */
export function readPolicyBundle(bytes: Uint8Array, fieldPath = "bundle"): PolicyBundle {
  const fail = (message: string, cause?: unknown): StacklError =>
    new StacklError(ErrorCode.InvalidArgument, `${fieldPath}: not an OPA WebAssembly bundle: ${message}`, {
      violations: [{ field: fieldPath, message: `not an OPA WebAssembly bundle: ${message}` }],
      cause,
    });

  let entries: ReturnType<typeof readTarGz>;
  try {
    entries = readTarGz(bytes);
  } catch (err) {
    if (err instanceof TarFormatError) throw fail(err.message, err);
    throw err;
  }
  const files = new Map(entries.map((e) => [e.path, e.bytes]));

  let entrypoints: string[] = [];
  let regoVersion: number | undefined;
  let modulePath = "policy.wasm";
  const manifestBytes = files.get(".manifest");
  if (manifestBytes !== undefined) {
    const manifest = parseJson(manifestBytes, ".manifest", fail);
    if (typeof manifest !== "object" || manifest === null) throw fail(".manifest is not a JSON object");
    const m = manifest as { wasm?: unknown; rego_version?: unknown };
    if (Array.isArray(m.wasm)) {
      const modules = new Set<string>();
      for (const item of m.wasm) {
        const w = item as { entrypoint?: unknown; module?: unknown };
        if (typeof w.entrypoint !== "string" || typeof w.module !== "string") {
          throw fail(".manifest wasm entries need string entrypoint and module");
        }
        entrypoints.push(w.entrypoint);
        modules.add(w.module.replace(/^\/+/, ""));
      }
      if (modules.size > 1) throw fail(`more than one WebAssembly module (${[...modules].sort().join(", ")})`);
      modulePath = [...modules][0] ?? modulePath;
    }
    if (typeof m.rego_version === "number") regoVersion = m.rego_version;
  }
  entrypoints = [...new Set(entrypoints)];

  const wasm = files.get(modulePath);
  if (wasm === undefined) throw fail(`no /${modulePath} in the archive`);
  if (!WebAssemblyApi.validate(wasm)) throw fail(`/${modulePath} is not a valid WebAssembly module`);
  const dataBytes = files.get("data.json");
  const data = dataBytes === undefined ? {} : parseJson(dataBytes, "data.json", fail);

  return { sha256: sha256Hex(bytes), bytes, wasm, data, entrypoints, regoVersion };
}

function parseJson(bytes: Uint8Array, what: string, fail: (m: string, cause?: unknown) => StacklError): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw fail(`${what} is not JSON`, err);
  }
}
