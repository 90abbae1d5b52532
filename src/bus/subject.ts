import { StacklError } from "../errors.js";

/** Longest doorbell subject accepted (before the bus adds its prefix). */
export const MAX_SUBJECT_LENGTH = 512;

/** Whitespace or an ASCII control character (NATS treats them as separators or rejects them). */
function hasBadChar(token: string): boolean {
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return /\s/.test(token);
}

/**
 * Checks a doorbell subject: dot-separated non-empty tokens without whitespace or control characters. With
 * `wildcards`, a token may be exactly `*` (one token) and the last token may be exactly `>` (one or more tokens);
 * without, neither may appear at all. Throws `invalid_argument`.
 */
export function validateSubject(subject: string, wildcards: boolean): void {
  const fail = (message: string): never => {
    throw StacklError.invalid([{ field: "subject", message: `${JSON.stringify(subject)}: ${message}` }]);
  };
  if (subject.length === 0) fail("must not be empty");
  if (subject.length > MAX_SUBJECT_LENGTH) fail(`longer than ${MAX_SUBJECT_LENGTH} characters`);
  const tokens = subject.split(".");
  tokens.forEach((t, i) => {
    if (t.length === 0) fail("empty token");
    if (hasBadChar(t)) fail("whitespace or control character");
    if (t === "*" || t === ">") {
      if (!wildcards) fail("wildcards are only allowed when subscribing");
      if (t === ">" && i !== tokens.length - 1) fail("'>' must be the last token");
      return;
    }
    if (t.includes("*") || t.includes(">")) fail("'*' and '>' must be whole tokens");
  });
}

/** A predicate telling whether a concrete subject matches `pattern` (NATS wildcard rules). */
export function subjectMatcher(pattern: string): (subject: string) => boolean {
  const p = pattern.split(".");
  const tail = p[p.length - 1] === ">";
  const fixed = tail ? p.length - 1 : p.length;
  return (subject) => {
    const s = subject.split(".");
    if (tail ? s.length <= fixed : s.length !== fixed) return false;
    for (let i = 0; i < fixed; i++) {
      const want = p[i];
      if (want !== "*" && want !== s[i]) return false;
    }
    return true;
  };
}
