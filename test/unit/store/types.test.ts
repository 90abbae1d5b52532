import assert from "node:assert/strict";
import { test } from "node:test";
import { Oid, parseArrayLiteral, parserFor } from "../../../src/store/types.js";

const parse = (oid: number, text: string): unknown => {
  const p = parserFor(oid);
  assert.ok(p, `parser for ${oid}`);
  return p(text);
};

test("int8 parses to a number and refuses values a number cannot hold exactly", () => {
  assert.equal(parse(Oid.int8, "-9007199254740991"), -9007199254740991);
  assert.throws(() => parse(Oid.int8, "9007199254740992"), RangeError);
});

test("timestamps parse with any offset, fractions, BC and infinity", () => {
  assert.deepEqual(parse(Oid.timestamptz, "2024-02-29 12:34:56.789123+00"), new Date("2024-02-29T12:34:56.789Z"));
  assert.deepEqual(parse(Oid.timestamptz, "2024-02-29 18:04:56+05:30"), new Date("2024-02-29T12:34:56Z"));
  assert.deepEqual(parse(Oid.timestamptz, "2024-02-29 12:34:56-03"), new Date("2024-02-29T15:34:56Z"));
  assert.deepEqual(parse(Oid.timestamp, "0099-01-01 00:00:00"), new Date("0099-01-01T00:00:00Z"));
  assert.equal((parse(Oid.timestamptz, "0044-03-15 12:00:00+00 BC") as Date).getUTCFullYear(), -43);
  assert.equal((parse(Oid.timestamptz, "infinity") as Date).getTime(), 8.64e15);
  assert.throws(() => parse(Oid.timestamptz, "yesterday"));
});

test("bytea parses to a plain Uint8Array", () => {
  const v = parse(Oid.bytea, "\\x00ff");
  assert.ok(v instanceof Uint8Array && !Buffer.isBuffer(v));
  assert.deepEqual(v, new Uint8Array([0, 255]));
});

test("array literals: quoting, escapes, NULL, nesting, dimension decoration", () => {
  const id = (s: string): string => s;
  assert.deepEqual(parseArrayLiteral("{}", id), []);
  assert.deepEqual(parseArrayLiteral('{a,"b c","d\\"e","f\\\\g",NULL,"NULL"}', id), [
    "a",
    "b c",
    'd"e',
    "f\\g",
    null,
    "NULL",
  ]);
  assert.deepEqual(parseArrayLiteral("{{1,2},{3,4}}", Number), [
    [1, 2],
    [3, 4],
  ]);
  assert.deepEqual(parseArrayLiteral("[0:1]={7,8}", Number), [7, 8]);
  assert.deepEqual(parse(1016, "{1,NULL,3}"), [1, null, 3]);
  assert.deepEqual(parse(1231, "{1.50,2}"), ["1.50", "2"]);
});

test("types outside the table keep the driver default", () => {
  assert.equal(parserFor(25), undefined); // text
  assert.equal(parserFor(2950), undefined); // uuid
});
