import { readFile } from "node:fs/promises";

/**
 * Secrets reach a job as references (`JobSpec.secrets`: name -> reference) and are resolved on the agent, as late
 * as possible, by the provider named by the reference's scheme: `env:NAME` reads the agent's environment,
 * `file:/path` reads a file. More providers (Vault, cloud secret managers) register in the provider map.
 */

/** Resolves the part of a reference after `<scheme>:` to the secret value. Errors never contain the value. */
export type SecretProvider = (locator: string, signal: AbortSignal) => Promise<string>;

/** Providers by scheme. */
export type SecretProviders = ReadonlyMap<string, SecretProvider>;

/** A secret reference that could not be resolved; the message names the secret and its reference, never a value. */
export class SecretResolutionError extends Error {
  override readonly name = "SecretResolutionError";
  constructor(
    readonly secret: string,
    readonly reference: string,
    reason: string,
  ) {
    super(`secret "${secret}" (${reference}): ${reason}`);
  }
}

/** `env:NAME`: the value of the agent's environment variable NAME (it must be set; it may be empty). */
export function envSecretProvider(env: NodeJS.ProcessEnv = process.env): SecretProvider {
  return async (name) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`"${name}" is not an environment variable name`);
    const value = env[name];
    if (value === undefined) throw new Error(`environment variable ${name} is not set on the agent`);
    return value;
  };
}

/** `file:/path`: the file's contents (UTF-8) without one trailing newline. */
export function fileSecretProvider(): SecretProvider {
  return async (file, signal) => {
    if (file === "") throw new Error("no file path");
    let text: string;
    try {
      text = await readFile(file, { encoding: "utf8", signal });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(`cannot read ${file}${code ? ` (${code})` : ""}`);
    }
    return text.replace(/\r?\n$/, "");
  };
}

/** The built-in providers: `env` and `file`. */
export function defaultSecretProviders(env: NodeJS.ProcessEnv = process.env): Map<string, SecretProvider> {
  return new Map<string, SecretProvider>([
    ["env", envSecretProvider(env)],
    ["file", fileSecretProvider()],
  ]);
}

/** Splits `scheme:locator`; undefined when the reference has no scheme. */
export function parseSecretReference(reference: string): { scheme: string; locator: string } | undefined {
  const m = /^([a-z][a-z0-9+.-]*):(.*)$/s.exec(reference);
  if (!m) return undefined;
  return { scheme: m[1]!, locator: m[2]! };
}

/** Resolves every reference; the first failure rejects with a SecretResolutionError naming the secret. */
export async function resolveSecrets(
  references: Readonly<Record<string, string>>,
  providers: SecretProviders,
  signal: AbortSignal,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [name, reference] of Object.entries(references).sort(([a], [b]) => a.localeCompare(b))) {
    const parsed = parseSecretReference(reference);
    if (!parsed) {
      throw new SecretResolutionError(name, reference, "not a reference of the form <provider>:<locator>");
    }
    const provider = providers.get(parsed.scheme);
    if (!provider) {
      const known = [...providers.keys()].sort().join(", ");
      throw new SecretResolutionError(name, reference, `no secret provider "${parsed.scheme}" (known: ${known})`);
    }
    signal.throwIfAborted();
    try {
      out.set(name, await provider(parsed.locator, signal));
    } catch (err) {
      signal.throwIfAborted();
      throw new SecretResolutionError(name, reference, err instanceof Error ? err.message : String(err));
    }
  }
  return out;
}
