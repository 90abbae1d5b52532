/**
 * Name and label rules (documents.proto `DocumentMeta`). Names keep `env.loc.zone` target keys unambiguous (no `.`)
 * and policy template names are valid Rego package names.
 */
import type { FieldViolation } from "../errors.js";
import type { DocumentKind } from "./document-kinds.js";

/** Longest document name, label key or label value. */
export const NAME_MAX_LENGTH = 63;

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const REGO_PACKAGE_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9._/-]*[A-Za-z0-9])?$/;
const LABEL_VALUE_PATTERN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)?$/;

/** Rego keywords (v0 and v1) that cannot be used as a package name. */
const REGO_KEYWORDS: ReadonlySet<string> = new Set([
  "as",
  "contains",
  "default",
  "else",
  "every",
  "false",
  "if",
  "import",
  "in",
  "not",
  "null",
  "package",
  "some",
  "true",
  "with",
]);

/**
 * Why `name` is not a valid document name, or undefined when it is. With `kind === "policy_template"` the name must
 * also be a Rego package name.
 */
export function nameProblem(name: string, kind?: DocumentKind): string | undefined {
  if (name.length === 0) return "a name is required";
  if (name.length > NAME_MAX_LENGTH)
    return `name is ${name.length} characters long; at most ${NAME_MAX_LENGTH} allowed`;
  if (!NAME_PATTERN.test(name)) {
    if (name.includes(".")) return `name ${JSON.stringify(name)} must not contain "." (target keys are env.loc.zone)`;
    return `name ${JSON.stringify(name)} must consist of letters, digits, "_" and "-", starting with a letter or digit`;
  }
  if (kind === "policy_template") return regoPackageNameProblem(name);
  return undefined;
}

/** Why `name` is not a usable Rego package name, or undefined when it is. */
export function regoPackageNameProblem(name: string): string | undefined {
  if (!REGO_PACKAGE_PATTERN.test(name)) {
    return `policy template name ${JSON.stringify(name)} must be a Rego package name: a letter or "_" first, then letters, digits and "_"`;
  }
  if (REGO_KEYWORDS.has(name)) return `policy template name ${JSON.stringify(name)} is a Rego keyword`;
  return undefined;
}

/** True when `name` is a valid name for a document of `kind` (any kind when omitted). */
export function isValidName(name: string, kind?: DocumentKind): boolean {
  return nameProblem(name, kind) === undefined;
}

/** The violation of `name` at `field`, as a list (empty when valid). */
export function validateName(name: string, field: string, kind?: DocumentKind): FieldViolation[] {
  const message = nameProblem(name, kind);
  return message === undefined ? [] : [{ field, message }];
}

/** Why `key` is not a valid label key, or undefined. Keys: 1-63 of letters, digits, `.`, `_`, `-`, `/`, alphanumeric at both ends. */
export function labelKeyProblem(key: string): string | undefined {
  if (key.length === 0) return "label key must not be empty";
  if (key.length > NAME_MAX_LENGTH)
    return `label key is ${key.length} characters long; at most ${NAME_MAX_LENGTH} allowed`;
  if (!LABEL_KEY_PATTERN.test(key)) {
    return `label key ${JSON.stringify(key)} must consist of letters, digits, ".", "_", "-" and "/", beginning and ending with a letter or digit`;
  }
  return undefined;
}

/** Why `value` is not a valid label value, or undefined. Values: empty, or up to 63 of letters, digits, `.`, `_`, `-`, alphanumeric at both ends. */
export function labelValueProblem(value: string): string | undefined {
  if (value.length > NAME_MAX_LENGTH) {
    return `label value is ${value.length} characters long; at most ${NAME_MAX_LENGTH} allowed`;
  }
  if (!LABEL_VALUE_PATTERN.test(value)) {
    return `label value ${JSON.stringify(value)} must consist of letters, digits, ".", "_" and "-", beginning and ending with a letter or digit`;
  }
  return undefined;
}

/** Violations of a label map; `field` is the path of the map (entries become `field["key"]`). Sorted by key. */
export function validateLabels(labels: Readonly<Record<string, string>>, field: string): FieldViolation[] {
  const violations: FieldViolation[] = [];
  for (const key of Object.keys(labels).sort()) {
    const keyProblem = labelKeyProblem(key);
    const valueProblem = labelValueProblem(labels[key] ?? "");
    const entry = `${field}[${JSON.stringify(key)}]`;
    if (keyProblem !== undefined) violations.push({ field: entry, message: keyProblem });
    if (valueProblem !== undefined) violations.push({ field: entry, message: valueProblem });
  }
  return violations;
}
