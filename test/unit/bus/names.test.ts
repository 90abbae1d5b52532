import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_QUEUE_TOKEN_LENGTH, queueToken } from "../../../src/bus/queue-name.js";
import { subjectMatcher, validateSubject } from "../../../src/bus/subject.js";
import { ErrorCode, StacklError } from "../../../src/errors.js";

const invalid = (err: unknown): boolean => err instanceof StacklError && err.code === ErrorCode.InvalidArgument;

test("queueToken keeps [A-Za-z0-9-] and escapes everything else reversibly", () => {
  assert.equal(queueToken("default"), "default");
  assert.equal(queueToken("Web-Pool-2"), "Web-Pool-2");
  assert.equal(queueToken("a.b"), "a_2eb");
  assert.equal(queueToken("a_b"), "a_5fb");
  assert.equal(queueToken("a b*>/"), "a_20b_2a_3e_2f");
  assert.equal(queueToken("ü"), "_c3_bc");
  const names = ["a.b", "a_b", "a_2eb", "a b", "a*b", "a>b", "a/b", "a\\b", "ab"];
  assert.equal(new Set(names.map(queueToken)).size, names.length);
  for (const n of names) assert.match(queueToken(n), /^[A-Za-z0-9_-]+$/);
});

test("queueToken rejects empty and too long names", () => {
  assert.throws(() => queueToken(""), invalid);
  assert.equal(queueToken("x".repeat(MAX_QUEUE_TOKEN_LENGTH)).length, MAX_QUEUE_TOKEN_LENGTH);
  assert.throws(() => queueToken("x".repeat(MAX_QUEUE_TOKEN_LENGTH + 1)), invalid);
  assert.throws(() => queueToken(".".repeat(70)), invalid);
});

test("validateSubject", () => {
  for (const ok of ["a", "a.b.c", "pool.P-1.jobs", "job.01HZX"]) validateSubject(ok, false);
  for (const ok of ["a.*", "*.b", "a.>", ">", "*.*.>"]) validateSubject(ok, true);
  for (const bad of ["", "a.", ".a", "a..b", "a b", "a\tb", "a.*", "a.>", "a*"]) {
    assert.throws(() => validateSubject(bad, false), invalid, bad);
  }
  for (const bad of ["a.>.b", "a*.b", "a.b>", ">.a"]) assert.throws(() => validateSubject(bad, true), invalid, bad);
});

test("subjectMatcher follows NATS wildcard rules", () => {
  const cases: Array<[string, string, boolean]> = [
    ["a.b", "a.b", true],
    ["a.b", "a.b.c", false],
    ["a.*", "a.b", true],
    ["a.*", "a", false],
    ["a.*", "a.b.c", false],
    ["a.*.c", "a.b.c", true],
    ["a.*.c", "a.b.d", false],
    ["a.>", "a.b", true],
    ["a.>", "a.b.c.d", true],
    ["a.>", "a", false],
    [">", "x", true],
    [">", "x.y", true],
    ["*.>", "x", false],
    ["*.>", "x.y", true],
  ];
  for (const [pattern, subject, want] of cases) {
    assert.equal(subjectMatcher(pattern)(subject), want, `${pattern} vs ${subject}`);
  }
});
