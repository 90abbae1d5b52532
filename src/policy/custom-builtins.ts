/**
 * Built-in functions that a compiled policy may import from its host. `opa build -t wasm` compiles most of Rego's
 * built-ins into the module; the rest become imports that the host must supply: the opa-wasm SDK supplies a few
 * (`SDK_BUILTINS`), STACKL supplies `CUSTOM_BUILTINS`, anything else fails at evaluation with "not implemented:
 * built-in function …" — so the compiler and the bundle build reject such policies up front (`unsupportedBuiltins`).
 */
import { parseBytes } from "./parse-bytes.js";

/** A host implementation: receives the arguments as JSON values, returns a JSON value or undefined (= undefined). */
export type BuiltinImplementation = (...args: unknown[]) => unknown;

/** Supplied by `@open-policy-agent/opa-wasm` 1.10 itself (its `src/builtins/*.js`). */
export const SDK_BUILTINS: readonly string[] = [
  "json.is_valid",
  "regex.split",
  "sprintf",
  "yaml.is_valid",
  "yaml.marshal",
  "yaml.unmarshal",
];

/**
 * Supplied by STACKL. `units.parse_bytes` keeps the original STACKL's policy templates working (its default
 * orchestration policy used it; SAT policies copied from it do too). A value it cannot parse yields undefined, as a
 * builtin error did in the OPA server's default (non-strict) evaluation.
 */
export const CUSTOM_BUILTINS: Readonly<Record<string, BuiltinImplementation>> = {
  "units.parse_bytes": (quantity: unknown) => (typeof quantity === "string" ? parseBytes(quantity) : undefined),
};

/** The imports of a module that neither the SDK nor STACKL supplies, sorted. */
export function unsupportedBuiltins(
  required: readonly string[],
  custom: Readonly<Record<string, BuiltinImplementation>> = CUSTOM_BUILTINS,
): string[] {
  return required.filter((name) => !SDK_BUILTINS.includes(name) && !(name in custom)).sort();
}
