/**
 * In-process evaluation of OPA WebAssembly bundles with `@open-policy-agent/opa-wasm`, with memory kept flat.
 *
 * A WebAssembly instance's linear memory only grows: opa-wasm writes every input into it (growing it for a large
 * input) and never shrinks it, and long runs of `evaluate()` are reported to leak (npm-opa-wasm#143). So each
 * compiled policy holds one instance and replaces it with a fresh one (from the already compiled module: cheap)
 * every `recycleAfterEvaluations` evaluations, as soon as its memory passes `recycleAboveMemoryBytes`, and after any
 * evaluation error (an aborted evaluation can leave the instance's heap inconsistent). Memory is bounded by
 * `maximumMemoryPages` per instance.
 *
 * Compiled policies are cached by bundle SHA-256 (least recently used evicted beyond `maxCachedPolicies`).
 * Evaluation is synchronous (WebAssembly); loading compiles asynchronously, once per bundle.
 */
import { createRequire } from "node:module";
import type { LoadedPolicy } from "@open-policy-agent/opa-wasm";
import { ErrorCode, StacklError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import { type BuiltinImplementation, CUSTOM_BUILTINS } from "./custom-builtins.js";
import { type PolicyBundle, readPolicyBundle, sha256Hex } from "./policy-bundle.js";
import { type WasmMemory, type WasmModule, WebAssemblyApi } from "./wasm-api.js";

// The package's ESM entry exports only `loadPolicy`; its CommonJS entry has `loadPolicySync` too.
const { loadPolicy, loadPolicySync } = createRequire(import.meta.url)(
  "@open-policy-agent/opa-wasm",
) as typeof import("@open-policy-agent/opa-wasm");

/** A WebAssembly page: 64 KiB. */
export const WASM_PAGE_BYTES = 64 * 1024;
/** Evaluations after which an instance is replaced. */
export const DEFAULT_RECYCLE_AFTER_EVALUATIONS = 10_000;
/** Linear memory above which an instance is replaced after its evaluation. */
export const DEFAULT_RECYCLE_ABOVE_MEMORY_BYTES = 64 * 1024 * 1024;
/** Initial linear memory of an instance: 2 MiB. */
export const DEFAULT_INITIAL_MEMORY_PAGES = 32;
/** Hard cap of an instance's linear memory: 1 GiB (an evaluation needing more fails instead of taking the host). */
export const DEFAULT_MAXIMUM_MEMORY_PAGES = 16_384;
/** Compiled bundles kept. */
export const DEFAULT_MAX_CACHED_POLICIES = 128;

export interface PolicyEngineOptions {
  /**
   * Evaluations after which an instance is replaced by a fresh one.
   * @default 10_000 (DEFAULT_RECYCLE_AFTER_EVALUATIONS)
   */
  recycleAfterEvaluations?: number;
  /**
   * Linear-memory size above which an instance is replaced after its evaluation.
   * @default 64 MiB (DEFAULT_RECYCLE_ABOVE_MEMORY_BYTES)
   */
  recycleAboveMemoryBytes?: number;
  /**
   * Initial linear memory of an instance, in 64 KiB pages.
   * @default 32 (DEFAULT_INITIAL_MEMORY_PAGES)
   */
  initialMemoryPages?: number;
  /**
   * Maximum linear memory of an instance, in 64 KiB pages; an evaluation needing more fails.
   * @default 16_384 = 1 GiB (DEFAULT_MAXIMUM_MEMORY_PAGES)
   */
  maximumMemoryPages?: number;
  /**
   * Compiled bundles kept in the cache (least recently used evicted).
   * @default 128 (DEFAULT_MAX_CACHED_POLICIES)
   */
  maxCachedPolicies?: number;
  /**
   * Host built-ins offered to every policy, added to (and overriding) STACKL's.
   * @default {} (STACKL's CUSTOM_BUILTINS only)
   */
  customBuiltins?: Readonly<Record<string, BuiltinImplementation>>;
  /**
   * Logs instance recycling at debug level and cache evictions.
   * @default undefined (silent)
   */
  logger?: Logger;
}

interface NormalisedOptions {
  readonly recycleAfterEvaluations: number;
  readonly recycleAboveMemoryBytes: number;
  readonly initialMemoryPages: number;
  readonly maximumMemoryPages: number;
  readonly maxCachedPolicies: number;
  readonly customBuiltins: Readonly<Record<string, BuiltinImplementation>>;
  readonly logger: Logger | undefined;
}

function normalise(o: PolicyEngineOptions): NormalisedOptions {
  const positive = (name: string, v: number | undefined, d: number): number => {
    const value = v ?? d;
    if (!(value > 0)) throw new RangeError(`PolicyEngineOptions.${name} must be > 0, got ${value}`);
    return value;
  };
  const initialMemoryPages = positive("initialMemoryPages", o.initialMemoryPages, DEFAULT_INITIAL_MEMORY_PAGES);
  const maximumMemoryPages = positive("maximumMemoryPages", o.maximumMemoryPages, DEFAULT_MAXIMUM_MEMORY_PAGES);
  if (maximumMemoryPages < initialMemoryPages || maximumMemoryPages > 65_536) {
    throw new RangeError(`PolicyEngineOptions.maximumMemoryPages must be in [initialMemoryPages, 65536]`);
  }
  return {
    recycleAfterEvaluations: positive(
      "recycleAfterEvaluations",
      o.recycleAfterEvaluations,
      DEFAULT_RECYCLE_AFTER_EVALUATIONS,
    ),
    recycleAboveMemoryBytes: positive(
      "recycleAboveMemoryBytes",
      o.recycleAboveMemoryBytes,
      DEFAULT_RECYCLE_ABOVE_MEMORY_BYTES,
    ),
    initialMemoryPages,
    maximumMemoryPages,
    maxCachedPolicies: positive("maxCachedPolicies", o.maxCachedPolicies, DEFAULT_MAX_CACHED_POLICIES),
    customBuiltins: { ...CUSTOM_BUILTINS, ...o.customBuiltins },
    logger: o.logger,
  };
}

/** The outcome of one evaluation. */
export interface Evaluation<T = unknown> {
  /** The entrypoint's value; undefined when the rule is undefined for this input. */
  readonly result: T | undefined;
  readonly defined: boolean;
  /** Wall time of the evaluation, input encoding and result decoding included. */
  readonly durationMs: number;
}

/**
 * An input already encoded as JSON text, to pass one large shared input to many evaluations without re-encoding
 * it each time (see `spliceInput`).
 */
export class EncodedInput {
  readonly bytes: Uint8Array;
  private constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }
  static of(value: unknown): EncodedInput {
    return new EncodedInput(new TextEncoder().encode(JSON.stringify(value)));
  }
  /** Wraps JSON text the caller vouches for (not parsed here). */
  static fromJson(json: string | Uint8Array): EncodedInput {
    return new EncodedInput(typeof json === "string" ? new TextEncoder().encode(json) : json);
  }
}

/**
 * `base` (an encoded JSON object) with the top-level members of `extra` added in front: `{...extra, ...base}`
 * without decoding `base`. Keys of `extra` must not also be keys of `base`.
 */
export function spliceInput(base: EncodedInput, extra: Readonly<Record<string, unknown>>): EncodedInput {
  const head = JSON.stringify(extra);
  if (head === "{}") return base;
  const b = base.bytes;
  let i = 0;
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
  if (b[i] !== 0x7b) throw new TypeError("spliceInput: the base input is not a JSON object");
  const rest = b.subarray(i + 1);
  const emptyBase = new TextDecoder().decode(rest).trim() === "}";
  const prefix = new TextEncoder().encode(emptyBase ? head.slice(0, -1) : `${head.slice(0, -1)},`);
  const out = new Uint8Array(prefix.length + rest.length);
  out.set(prefix, 0);
  out.set(rest, prefix.length);
  return EncodedInput.fromJson(out);
}

/** Counters of one compiled policy. */
export interface PolicyStats {
  /** Evaluations since it was loaded. */
  readonly evaluations: number;
  /** Instances replaced so far. */
  readonly recycles: number;
  /** Evaluations of the current instance. */
  readonly instanceEvaluations: number;
  /** Linear memory of the current instance, in bytes. */
  readonly memoryBytes: number;
}

/** Why an instance was replaced. */
export type RecycleReason = "evaluations" | "memory" | "error";

/** A bundle compiled once, evaluated many times by one recycled instance. */
export class CompiledPolicy {
  readonly sha256: string;
  readonly entrypoints: readonly string[];
  readonly bundle: PolicyBundle;
  readonly #module: WasmModule;
  readonly #options: NormalisedOptions;
  #instance: LoadedPolicy;
  #evaluations = 0;
  #instanceEvaluations = 0;
  #recycles = 0;

  /** @internal use PolicyEngine.load */
  constructor(bundle: PolicyBundle, module: WasmModule, first: LoadedPolicy, options: NormalisedOptions) {
    this.bundle = bundle;
    this.sha256 = bundle.sha256;
    this.#module = module;
    this.#options = options;
    this.#instance = first;
    // The module's own list is authoritative (a bundle may lack a manifest).
    this.entrypoints = Object.keys(first.entrypoints as Record<string, number>).sort();
  }

  hasEntrypoint(entrypoint: string): boolean {
    return this.entrypoints.includes(entrypoint);
  }

  /**
   * Evaluates `entrypoint` (`pkg/rule`, e.g. `orchestration/solutions`) on `input`. Throws StacklError
   * `invalid_argument` for an unknown entrypoint and `failed_precondition` when the policy fails at run time
   * (e.g. conflicting values for a complete rule, a missing host built-in, memory exhausted).
   */
  evaluate<T = unknown>(entrypoint: string, input: unknown): Evaluation<T> {
    if (!this.hasEntrypoint(entrypoint)) {
      throw new StacklError(
        ErrorCode.InvalidArgument,
        `policy bundle ${this.sha256.slice(0, 12)} has no entrypoint "${entrypoint}" (it has: ${this.entrypoints.join(", ") || "none"})`,
        { details: { bundle_sha256: this.sha256, entrypoint } },
      );
    }
    const started = performance.now();
    let resultSet: unknown;
    try {
      const encoded = input instanceof EncodedInput ? toArrayBuffer(input.bytes) : input;
      resultSet = this.#instance.evaluate(encoded, entrypoint);
    } catch (err) {
      this.#evaluations++;
      this.#recycle("error");
      throw new StacklError(
        ErrorCode.FailedPrecondition,
        `evaluation of ${entrypoint} failed: ${describeWasmError(err)}`,
        { details: { bundle_sha256: this.sha256, entrypoint }, cause: err instanceof Error ? err : undefined },
      );
    }
    this.#evaluations++;
    this.#instanceEvaluations++;
    const durationMs = performance.now() - started;
    if (this.#instanceEvaluations >= this.#options.recycleAfterEvaluations) this.#recycle("evaluations");
    else if (this.#instance.mem.buffer.byteLength > this.#options.recycleAboveMemoryBytes) this.#recycle("memory");

    const first = Array.isArray(resultSet) ? (resultSet[0] as { result?: unknown } | undefined) : undefined;
    if (first === undefined || !("result" in first)) return { result: undefined, defined: false, durationMs };
    return { result: first.result as T, defined: true, durationMs };
  }

  stats(): PolicyStats {
    return {
      evaluations: this.#evaluations,
      recycles: this.#recycles,
      instanceEvaluations: this.#instanceEvaluations,
      memoryBytes: this.#instance.mem.buffer.byteLength,
    };
  }

  /** Replaces the instance now (tests, or after a burst of large inputs). */
  recycle(): void {
    this.#recycle("evaluations");
  }

  #recycle(reason: RecycleReason): void {
    const before = this.#instance.mem.buffer.byteLength;
    this.#instance = instantiate(this.#module, this.bundle, this.#options);
    this.#instanceEvaluations = 0;
    this.#recycles++;
    this.#options.logger?.debug(
      { bundle_sha256: this.sha256, reason, memory_bytes: before, recycles: this.#recycles },
      "policy instance recycled",
    );
  }
}

/** Loads and caches compiled policies. One engine per process is enough; it is not shared across threads. */
export class PolicyEngine {
  readonly #options: NormalisedOptions;
  /** sha256 → compiled policy (or its compilation in flight); Map order = least recently used first. */
  readonly #cache = new Map<string, Promise<CompiledPolicy>>();

  constructor(options: PolicyEngineOptions = {}) {
    this.#options = normalise(options);
  }

  /**
   * The compiled policy of `bundle` (tar.gz bytes or an already read bundle), compiling it on first use.
   * Throws StacklError `invalid_argument` when the bytes are not an OPA WebAssembly bundle.
   */
  load(bundle: Uint8Array | PolicyBundle): Promise<CompiledPolicy> {
    const sha256 = bundle instanceof Uint8Array ? bundleSha256(bundle) : bundle.sha256;
    const hit = this.#cache.get(sha256);
    if (hit !== undefined) {
      this.#cache.delete(sha256);
      this.#cache.set(sha256, hit);
      return hit;
    }
    // Read (gunzip, untar) only on a miss; a malformed bundle throws here, synchronously.
    const read = bundle instanceof Uint8Array ? readPolicyBundle(bundle) : bundle;
    const compiling = this.#compile(read);
    this.#cache.set(sha256, compiling);
    compiling.catch(() => this.#cache.delete(sha256));
    while (this.#cache.size > this.#options.maxCachedPolicies) {
      const oldest = this.#cache.keys().next().value as string;
      this.#cache.delete(oldest);
      this.#options.logger?.debug({ bundle_sha256: oldest }, "policy evicted from the cache");
    }
    return compiling;
  }

  /** The cached compiled policy with this SHA-256, if it is loaded. */
  async get(sha256: string): Promise<CompiledPolicy | undefined> {
    return this.#cache.get(sha256);
  }

  /** Loads (or finds) `bundle` and evaluates `entrypoint` on `input`. */
  async evaluate<T = unknown>(
    bundle: Uint8Array | PolicyBundle,
    entrypoint: string,
    input: unknown,
  ): Promise<Evaluation<T>> {
    return (await this.load(bundle)).evaluate<T>(entrypoint, input);
  }

  /** Number of cached bundles. */
  get size(): number {
    return this.#cache.size;
  }

  clear(): void {
    this.#cache.clear();
  }

  async #compile(bundle: PolicyBundle): Promise<CompiledPolicy> {
    const module = await WebAssemblyApi.compile(toArrayBuffer(bundle.wasm));
    const first = instantiate(module, bundle, this.#options);
    return new CompiledPolicy(bundle, module, first, this.#options);
  }
}

/** SHA-256 of bundle bytes, remembered per byte array (callers pass the same array again and again). */
const shaOfBytes = new WeakMap<Uint8Array, string>();

function bundleSha256(bytes: Uint8Array): string {
  let sha = shaOfBytes.get(bytes);
  if (sha === undefined) {
    sha = sha256Hex(bytes);
    shaOfBytes.set(bytes, sha);
  }
  return sha;
}

/**
 * The host built-ins a module imports (names of the `builtins` export), sorted: what the host must supply beyond
 * the built-ins compiled into the module.
 */
export async function requiredBuiltins(wasm: Uint8Array): Promise<string[]> {
  const policy = await loadPolicy(toArrayBuffer(wasm), { initial: 2 });
  const exports = instanceOf(policy).exports as unknown as {
    builtins: () => number;
    opa_json_dump: (addr: number) => number;
  };
  const text = readCString(policy.mem, exports.opa_json_dump(exports.builtins()));
  return Object.keys(JSON.parse(text) as Record<string, number>).sort();
}

function instantiate(module: WasmModule, bundle: PolicyBundle, o: NormalisedOptions): LoadedPolicy {
  const policy = loadPolicySync(
    module,
    { initial: o.initialMemoryPages, maximum: o.maximumMemoryPages },
    o.customBuiltins as Record<string, (...args: unknown[]) => unknown>,
  );
  if (!isEmptyObject(bundle.data)) policy.setData(bundle.data as object);
  return policy;
}

/** The instance inside a LoadedPolicy (opa-wasm keeps either the instance or `{module, instance}`). */
function instanceOf(policy: LoadedPolicy): { exports: unknown } {
  const w = policy.wasmInstance as unknown as { exports: unknown } | { instance: { exports: unknown } };
  return "instance" in w ? w.instance : w;
}

function readCString(memory: WasmMemory, addr: number): string {
  const bytes = new Uint8Array(memory.buffer);
  let end = addr;
  while (end < bytes.length && bytes[end] !== 0) end++;
  return new TextDecoder().decode(bytes.subarray(addr, end));
}

function isEmptyObject(v: unknown): boolean {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
}

/** A fresh ArrayBuffer holding exactly `bytes` (opa-wasm and WebAssembly.compile want an ArrayBuffer). */
function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) {
    return bytes.buffer;
  }
  return new Uint8Array(bytes).buffer; // copies (Buffer#slice would share the pool)
}

/** opa-wasm throws strings (opa_abort) and `{message}` objects (missing built-ins) as well as Errors. */
function describeWasmError(err: unknown): string {
  if (typeof err === "string") return err;
  if (err instanceof Error) return err.message;
  if (typeof err === "object" && err !== null && typeof (err as { message?: unknown }).message === "string") {
    return (err as { message: string }).message;
  }
  return String(err);
}
