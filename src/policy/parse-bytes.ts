/**
 * OPA's `units.parse_bytes`, in TypeScript, bit for bit: `opa build -t wasm` does not compile this builtin into
 * modules, so STACKL supplies it to opa-wasm as a host built-in (custom-builtins.ts) — for its own orchestration
 * policy and for user policies written for the original STACKL's OPA server.
 *
 * Rules (OPA v1 `topdown/parse_bytes.go`, the pinned opa's): lower-cased, double quotes removed; no spaces; a number
 * (optional sign, digits and `.`, optional exponent `e[+-]ddd` of at most 6 digits), then an optional unit: none =
 * bytes, `k`/`kb` = 1000, `ki`/`kib` = 1024, `m`/`mb`, `mi`/`mib`, `g`/`gb`, `gi`/`gib`, `t`/`tb`, `ti`/`tib`,
 * `p`/`pb`, `pi`/`pib`, `e`/`eb`, `ei`/`eib`. OPA parses the number into a `big.Float` of 64-bit mantissa (rounded
 * to nearest even), multiplies by the unit (rounded again) and truncates toward zero — so `33.3333MB` is 33333299
 * bytes, not 33333300. This file does the same arithmetic with BigInt. (Powers of 5 above 5^55 — exponents beyond
 * ±55 — are exact here where Go rounds them; such quantities are not byte sizes anyone writes.)
 */

const UNIT_MULTIPLIERS: Readonly<Record<string, bigint>> = {
  "": 1n,
  k: 1000n,
  kb: 1000n,
  ki: 1024n,
  kib: 1024n,
  m: 1000n ** 2n,
  mb: 1000n ** 2n,
  mi: 1024n ** 2n,
  mib: 1024n ** 2n,
  g: 1000n ** 3n,
  gb: 1000n ** 3n,
  gi: 1024n ** 3n,
  gib: 1024n ** 3n,
  t: 1000n ** 4n,
  tb: 1000n ** 4n,
  ti: 1024n ** 4n,
  tib: 1024n ** 4n,
  p: 1000n ** 5n,
  pb: 1000n ** 5n,
  pi: 1024n ** 5n,
  pib: 1024n ** 5n,
  e: 1000n ** 6n,
  eb: 1000n ** 6n,
  ei: 1024n ** 6n,
  eib: 1024n ** 6n,
};

/** Digits allowed in an exponent (OPA's maxExponentDigits). */
const MAX_EXPONENT_DIGITS = 6;
/** Mantissa bits of OPA's big.Float arithmetic here. */
const PRECISION = 64;

/** What Go's big.Float.SetString accepts of the characters extractNumAndUnit lets through. */
const GO_FLOAT = /^([+-]?)(?:([0-9]+)\.?([0-9]*)|\.([0-9]+))(?:e([+-]?[0-9]+))?$/;

/** Why a quantity could not be parsed (OPA's error messages). */
export type ParseBytesFailure =
  | "spaces not allowed in resource strings"
  | "no byte amount provided"
  | "byte unit not recognized"
  | "could not parse byte amount to a number"
  | "exponent too large";

export type ParseBytesResult =
  | { readonly ok: true; readonly bytes: bigint }
  | { readonly ok: false; readonly reason: ParseBytesFailure };

/** Parses `text` as OPA does, to a BigInt number of bytes. */
export function parseBytesExact(text: string): ParseBytesResult {
  const s = text.toLowerCase().replaceAll('"', "");
  if (s.includes(" ")) return { ok: false, reason: "spaces not allowed in resource strings" };
  const split = splitNumberAndUnit(s);
  if (split === undefined) return { ok: false, reason: "exponent too large" };
  const [num, unit] = split;
  if (num === "") return { ok: false, reason: "no byte amount provided" };
  const multiplier = UNIT_MULTIPLIERS[unit];
  if (multiplier === undefined) return { ok: false, reason: "byte unit not recognized" };
  const m = GO_FLOAT.exec(num);
  if (m === null) return { ok: false, reason: "could not parse byte amount to a number" };
  const negative = m[1] === "-";
  const whole = m[2] ?? "";
  const fraction = m[3] ?? m[4] ?? "";
  const exp10 = Number(m[5] ?? "0") - fraction.length;
  const digits = BigInt(`${whole}${fraction}` || "0");
  if (digits === 0n) return { ok: true, bytes: 0n };
  // The amount, rounded to a 64-bit mantissa (Go: SetString), times the unit, rounded again (Go: Mul).
  const amount =
    exp10 >= 0 ? roundToPrecision(digits * 10n ** BigInt(exp10), 1n) : roundToPrecision(digits, 10n ** BigInt(-exp10));
  const product = roundToPrecision(amount.num * multiplier, amount.den);
  const magnitude = product.num / product.den; // truncation toward zero (Go: Int)
  return { ok: true, bytes: negative ? -magnitude : magnitude };
}

/** Bytes in `text` as a JS number (beyond 2^53 with the precision JSON numbers have), or undefined. */
export function parseBytes(text: string): number | undefined {
  const r = parseBytesExact(text);
  return r.ok ? Number(r.bytes) : undefined;
}

/**
 * OPA's extractNumAndUnit: the number runs over digits, `.`, `+`, `-` and an `e` followed by a digit or a sign;
 * undefined when an exponent has more than MAX_EXPONENT_DIGITS digits.
 */
function splitNumberAndUnit(s: string): [string, string] | undefined {
  const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9";
  let end = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (!isDigit(c) && c !== "." && c !== "e" && c !== "+" && c !== "-") {
      end = i;
      break;
    }
    if (c === "e") {
      const next = s[i + 1];
      if (i === s.length - 1 || (!isDigit(next) && next !== "+" && next !== "-")) {
        end = i;
        break;
      }
      if (next === "+" || next === "-") i++;
      let expEnd = i + 1;
      while (expEnd < s.length && isDigit(s[expEnd])) expEnd++;
      if (expEnd - (i + 1) > MAX_EXPONENT_DIGITS) return undefined;
    }
  }
  if (end === -1) return [s, ""];
  if (end === 0) return ["", s];
  return [s.slice(0, end), s.slice(end)];
}

/** `n / d` (both > 0) rounded to a PRECISION-bit mantissa, to nearest, ties to even; as an exact fraction. */
function roundToPrecision(n: bigint, d: bigint): { num: bigint; den: bigint } {
  let e = bitLength(n) - bitLength(d) - PRECISION;
  for (;;) {
    const num = e >= 0 ? n : n << BigInt(-e);
    const den = e >= 0 ? d << BigInt(e) : d;
    let q = num / den;
    if (q >= 1n << BigInt(PRECISION)) {
      e++;
      continue;
    }
    if (q < 1n << BigInt(PRECISION - 1)) {
      e--;
      continue;
    }
    const twiceRemainder = 2n * (num % den);
    if (twiceRemainder > den || (twiceRemainder === den && (q & 1n) === 1n)) q++;
    // q may have become 2^PRECISION: still exactly representable (q * 2^e), fine as a fraction.
    return e >= 0 ? { num: q << BigInt(e), den: 1n } : { num: q, den: 1n << BigInt(-e) };
  }
}

function bitLength(n: bigint): number {
  return n.toString(2).length;
}
