import type { JsonObject, JsonValue } from "@bufbuild/protobuf";

/**
 * Parameters reach a shell job as environment variables, never through a shell: `STACKL_PARAM_<UPPER_SNAKE>`, the
 * value as is for strings and as JSON otherwise. Secrets likewise as `STACKL_SECRET_<UPPER_SNAKE>`.
 */

export const PARAM_ENV_PREFIX = "STACKL_PARAM_";
export const SECRET_ENV_PREFIX = "STACKL_SECRET_";

/**
 * `dbHost`, `db-host`, `db.host` and `DB_HOST` all become `DB_HOST`; `HTTPPort` becomes `HTTP_PORT`.
 * Returns "" when nothing usable is left.
 */
export function toUpperSnake(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .toUpperCase();
}

/** A parameter's environment value: strings as is, everything else as JSON. */
export function envValue(value: JsonValue): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

export interface EnvMapping {
  env: Record<string, string>;
  /** Names that mapped to an already used variable (the first in sorted order wins) or to nothing at all. */
  skipped: string[];
}

/** Maps `values` to `<prefix><UPPER_SNAKE(name)>` variables. */
export function toEnv(values: Iterable<[string, string]>, prefix: string): EnvMapping {
  const env: Record<string, string> = {};
  const skipped: string[] = [];
  for (const [name, value] of [...values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const suffix = toUpperSnake(name);
    const key = prefix + suffix;
    if (suffix === "" || key in env) {
      skipped.push(name);
      continue;
    }
    env[key] = value;
  }
  return { env, skipped };
}

/** `STACKL_PARAM_*` variables of a job's parameters. */
export function paramsToEnv(params: JsonObject): EnvMapping {
  return toEnv(
    Object.entries(params).map(([k, v]): [string, string] => [k, envValue(v)]),
    PARAM_ENV_PREFIX,
  );
}

/** `STACKL_SECRET_*` variables of a job's resolved secrets. */
export function secretsToEnv(secrets: ReadonlyMap<string, string>): EnvMapping {
  return toEnv(secrets.entries(), SECRET_ENV_PREFIX);
}
