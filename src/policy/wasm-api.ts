/**
 * The slice of the WebAssembly JS API this folder uses, typed locally: the project compiles against lib ES2023
 * without DOM types, where the `WebAssembly` namespace is not declared.
 */

/** A compiled module (opaque here; opa-wasm instantiates it). */
export interface WasmModule {
  readonly [Symbol.toStringTag]: string;
}

/** A linear memory. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

interface WebAssemblyApi {
  compile(bytes: ArrayBuffer): Promise<WasmModule>;
  validate(bytes: ArrayBuffer | Uint8Array): boolean;
}

export const WebAssemblyApi: WebAssemblyApi = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
