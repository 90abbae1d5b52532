/**
 * The one table of result-type conventions shared by both adapters. `pg` and PGlite disagree on several types out of
 * the box (int8 is a string in `pg` and a number-or-bigint in PGlite; bytea is a `Buffer` vs a `Uint8Array`;
 * `numeric[]` is float[] in `pg`; `date` and `interval` differ too), so both are configured from this table and return
 * the same JavaScript values for the same SQL:
 *
 * | PostgreSQL type                  | JavaScript                                                          |
 * |----------------------------------|---------------------------------------------------------------------|
 * | int2, int4, oid, float4, float8  | `number`                                                            |
 * | int8 (bigint, count(*))          | `number`; a value beyond ±2^53-1 throws a `RangeError` (never wrong) |
 * | numeric                          | `string` (exact)                                                    |
 * | bool                             | `boolean`                                                           |
 * | bytea                            | `Uint8Array` (a plain one, not a `Buffer`)                          |
 * | json, jsonb                      | parsed value                                                        |
 * | timestamptz, timestamp           | `Date` (a `timestamp` without zone is read as UTC)                  |
 * | date, interval, uuid, text, …    | `string`                                                            |
 * | arrays of the above              | arrays of the above                                                 |
 *
 * Parameters: pass `number`, `string`, `boolean`, `Date`, `Uint8Array`, `null`, or plain arrays for array columns.
 * For json/jsonb parameters pass `JSON.stringify(value)`: `pg` would send a JS array as a PostgreSQL array literal.
 */

/** Parses one non-null value in PostgreSQL's text format. */
export type TextParser = (text: string) => unknown;

/** Type OIDs (`pg_type.oid`), stable across PostgreSQL versions. */
export const Oid = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  numeric: 1700,
  jsonb: 3802,
} as const;

function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(`int8 value ${text} does not fit a JavaScript number (|n| > 2^53-1)`);
  }
  return n;
}

function parseBytea(text: string): Uint8Array {
  // bytea_output = hex (the default since PostgreSQL 9.0): "\x0102…"
  if (!text.startsWith("\\x")) throw new Error("bytea value is not in hex format (set bytea_output = hex)");
  const buf = Buffer.from(text.slice(2), "hex");
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength).slice();
}

const timestampPattern =
  /^(\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(\.\d{1,9})?(?:([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?|Z)?( BC)?$/;

/** Parses `timestamptz`/`timestamp` text output (DateStyle ISO, the default in both servers). */
function parseTimestamp(text: string): Date {
  if (text === "infinity") return new Date(8.64e15);
  if (text === "-infinity") return new Date(-8.64e15);
  const m = timestampPattern.exec(text);
  if (m === null) throw new Error(`unrecognised timestamp ${JSON.stringify(text)}`);
  const [, y, mo, d, h, mi, s, frac, sign, oh, om, os, bc] = m;
  let year = Number(y);
  if (bc !== undefined) year = 1 - year;
  const ms = frac === undefined ? 0 : Math.floor(Number(`0${frac}`) * 1000);
  const date = new Date(Date.UTC(2000, Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms));
  date.setUTCFullYear(year); // Date.UTC maps years 0–99 to 1900–1999
  const offsetSeconds = (Number(oh ?? 0) * 3600 + Number(om ?? 0) * 60 + Number(os ?? 0)) * (sign === "-" ? -1 : 1);
  return new Date(date.getTime() - offsetSeconds * 1000);
}

const identity: TextParser = (text) => text;

/** Scalar parsers by type OID. */
export const scalarParsers: ReadonlyMap<number, TextParser> = new Map<number, TextParser>([
  [Oid.bool, (t) => t === "t"],
  [Oid.bytea, parseBytea],
  [Oid.int8, parseInt8],
  [Oid.int2, Number],
  [Oid.int4, Number],
  [Oid.oid, Number],
  [Oid.float4, Number],
  [Oid.float8, Number],
  [Oid.json, (t) => JSON.parse(t)],
  [Oid.jsonb, (t) => JSON.parse(t)],
  [Oid.numeric, identity],
  [Oid.date, identity],
  [Oid.interval, identity],
  [Oid.timestamp, parseTimestamp],
  [Oid.timestamptz, parseTimestamp],
]);

/** Array type OID → element type OID, for the element types in `scalarParsers`. */
export const arrayElementOids: ReadonlyMap<number, number> = new Map([
  [1000, Oid.bool],
  [1001, Oid.bytea],
  [1016, Oid.int8],
  [1005, Oid.int2],
  [1007, Oid.int4],
  [1028, Oid.oid],
  [1021, Oid.float4],
  [1022, Oid.float8],
  [199, Oid.json],
  [3807, Oid.jsonb],
  [1231, Oid.numeric],
  [1182, Oid.date],
  [1187, Oid.interval],
  [1115, Oid.timestamp],
  [1185, Oid.timestamptz],
]);

/**
 * Parses a PostgreSQL array literal (`{1,2,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`) applying `element` to every
 * non-null element.
 */
export function parseArrayLiteral(text: string, element: TextParser): unknown[] {
  let i = 0;
  // Optional dimension decoration: "[0:1]={…}"
  if (text.startsWith("[")) i = text.indexOf("=") + 1;
  const parseLevel = (): unknown[] => {
    if (text[i] !== "{") throw new Error(`malformed array literal ${JSON.stringify(text)}`);
    i++;
    const out: unknown[] = [];
    if (text[i] === "}") {
      i++;
      return out;
    }
    for (;;) {
      const c = text[i];
      if (c === "{") {
        out.push(parseLevel());
      } else if (c === '"') {
        i++;
        let s = "";
        while (i < text.length && text[i] !== '"') {
          if (text[i] === "\\") i++;
          s += text[i];
          i++;
        }
        i++; // closing quote
        out.push(element(s));
      } else {
        let end = i;
        while (end < text.length && text[end] !== "," && text[end] !== "}") end++;
        const raw = text.slice(i, end);
        i = end;
        out.push(raw === "NULL" ? null : element(raw));
      }
      const sep = text[i];
      i++;
      if (sep === "}") return out;
      if (sep !== ",") throw new Error(`malformed array literal ${JSON.stringify(text)}`);
    }
  };
  return parseLevel();
}

/** The parser for `oid` under our conventions, or `undefined` to keep the driver's default (text → string). */
export function parserFor(oid: number): TextParser | undefined {
  const scalar = scalarParsers.get(oid);
  if (scalar !== undefined) return scalar;
  const elementOid = arrayElementOids.get(oid);
  if (elementOid === undefined) return undefined;
  const element = scalarParsers.get(elementOid);
  return element === undefined ? undefined : (text) => parseArrayLiteral(text, element);
}

/** Our parsers as a PGlite `parsers` option (PGlite derives its array parsers from the element parsers). */
export function pgliteParsers(): Record<number, TextParser> {
  return Object.fromEntries(scalarParsers);
}
