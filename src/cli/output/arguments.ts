/** Parsers of the client commands' arguments and option values (commander argParsers: bad input is a usage error). */
import { InvalidArgumentError } from "commander";
import { parseDuration } from "../../config/duration.js";
import { type DocumentKind, describeKinds, findKind } from "../../domain/document-kinds.js";

/** A document kind from any alias (`sit`, `functional-requirement`, `zones`, …). */
export function parseKindArgument(text: string): DocumentKind {
  const kind = findKind(text);
  if (kind === undefined) {
    throw new InvalidArgumentError(`unknown document kind ${JSON.stringify(text)}; valid kinds: ${describeKinds()}`);
  }
  return kind;
}

/** `key=value[,key=value…]`, accumulated over repeated `-l`. */
export function parseLabelSelector(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const out = { ...previous };
  for (const part of text.split(",")) {
    const trimmed = part.trim();
    if (trimmed === "") continue;
    const eq = trimmed.indexOf("=");
    if (eq <= 0) throw new InvalidArgumentError(`expected key=value, got ${JSON.stringify(trimmed)}`);
    out[trimmed.slice(0, eq).trim()] = trimmed.slice(eq + 1).trim();
  }
  return out;
}

/** A duration such as `500ms`, `30s`, `2m`, `1h30m`; a bare number means seconds. */
export function parseDurationArgument(text: string): number {
  const trimmed = text.trim();
  const ms = /^\d+(?:\.\d+)?$/.test(trimmed) ? Math.round(Number(trimmed) * 1000) : parseDuration(trimmed);
  if (ms === undefined)
    throw new InvalidArgumentError(`expected a duration such as 500ms, 30s or 2m, got ${JSON.stringify(text)}`);
  return ms;
}

/** A revision number (1 or more). */
export function parseRevision(text: string): bigint {
  if (!/^\d+$/.test(text.trim()) || BigInt(text.trim()) <= 0n) {
    throw new InvalidArgumentError(`expected a revision number (1 or more), got ${JSON.stringify(text)}`);
  }
  return BigInt(text.trim());
}

/** An expected revision: 0 (must not exist) or more. */
export function parseExpectedRevision(text: string): bigint {
  if (!/^\d+$/.test(text.trim())) {
    throw new InvalidArgumentError(`expected a revision number (0 or more), got ${JSON.stringify(text)}`);
  }
  return BigInt(text.trim());
}

/** A positive integer. */
export function parsePositiveInt(text: string): number {
  const n = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidArgumentError(`expected a positive integer, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** A non-negative integer. */
export function parseNonNegativeInt(text: string): number {
  const n = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`expected a non-negative integer, got ${JSON.stringify(text)}`);
  }
  return n;
}
