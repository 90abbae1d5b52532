import { StacklError } from "../errors.js";

/** Longest encoded queue token accepted (it becomes part of a subject, a consumer name and a file name on NATS). */
export const MAX_QUEUE_TOKEN_LENGTH = 200;

const PLAIN = /^[A-Za-z0-9-]$/;
const encoder = new TextEncoder();

/**
 * Encodes a queue name as one subject token that is also a valid JetStream consumer name: `[A-Za-z0-9-]` stays,
 * every other UTF-8 byte (including `_`, `.`, `*`, `>`, whitespace) becomes `_xx` (lower-case hex). Reversible, so two
 * different queue names never share a subject or a consumer. Throws `invalid_argument` for an empty or too long name.
 */
export function queueToken(queue: string): string {
  if (queue.length === 0) {
    throw StacklError.invalid([{ field: "queue", message: "must not be empty" }]);
  }
  let out = "";
  for (const ch of queue) {
    if (PLAIN.test(ch)) {
      out += ch;
      continue;
    }
    for (const b of encoder.encode(ch)) out += `_${b.toString(16).padStart(2, "0")}`;
  }
  if (out.length > MAX_QUEUE_TOKEN_LENGTH) {
    throw StacklError.invalid([
      { field: "queue", message: `too long once encoded (${out.length} > ${MAX_QUEUE_TOKEN_LENGTH} characters)` },
    ]);
  }
  return out;
}
