/**
 * Builders for the field paths carried by `FieldViolation.field`, e.g.
 * `documents[3].service.functional_requirements[1]` or `stack_application_template.policies["keep_in_location"]`.
 */

/** `prefix.field`, or `field` alone when the prefix is empty. */
export function fieldPath(prefix: string, field: string): string {
  if (prefix === "") return field;
  if (field === "") return prefix;
  return `${prefix}.${field}`;
}

/** `prefix[index]`. */
export function indexPath(prefix: string, index: number): string {
  return `${prefix}[${index}]`;
}

/** `prefix["key"]` (the key JSON-quoted, so any string is unambiguous). */
export function keyPath(prefix: string, key: string): string {
  return `${prefix}[${JSON.stringify(key)}]`;
}
