/**
 * Reads the `package` declaration of Rego source (v0 or v1 syntax) without a full parser: the first statement after
 * blank lines and `#` comments must be `package <path>`.
 */

export type RegoPackageResult =
  | { readonly ok: true; readonly packageName: string; readonly line: number }
  | { readonly ok: false; readonly message: string };

const PACKAGE_LINE = /^package\s+([^\s#;]+)\s*;?\s*(?:#.*)?$/;

/** The package path of `source` (e.g. `keep_in_location` or `a.b`), with its 1-based line, or why none was found. */
export function regoPackageOf(source: string): RegoPackageResult {
  const lines = source.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const match = PACKAGE_LINE.exec(line);
    if (match?.[1] === undefined) {
      return { ok: false, message: `line ${index + 1}: the first statement must be "package <name>"` };
    }
    return { ok: true, packageName: match[1], line: index + 1 };
  }
  return { ok: false, message: 'no "package" declaration found' };
}
