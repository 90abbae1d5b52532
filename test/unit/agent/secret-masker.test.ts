import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MASK, SecretMasker, secretForms } from "../../../agent/src/secret-masker.js";

const SECRET = 'p@ss"w\\rd-Sup3rS3cret-ü';

/** Every way the secret may show up in output that must be masked. */
function leakedForms(secret: string): string[] {
  const b = Buffer.from(secret);
  return [
    secret,
    JSON.stringify(secret).slice(1, -1),
    JSON.stringify(secret)
      .slice(1, -1)
      .replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`),
    b.toString("base64"),
    b.toString("base64url"),
  ];
}

function assertNoLeak(text: string, secret = SECRET): void {
  for (const form of leakedForms(secret)) {
    assert.ok(!text.includes(form), `leaked form ${JSON.stringify(form)} in ${JSON.stringify(text)}`);
  }
}

describe("secretForms", () => {
  test("plain, JSON-escaped (both styles), base64 and base64url", () => {
    const forms = secretForms(SECRET);
    for (const f of leakedForms(SECRET)) assert.ok(forms.includes(f), `missing form ${f}`);
    assert.deepEqual(secretForms(""), []);
  });
});

describe("SecretMasker.maskString", () => {
  const masker = new SecretMasker([SECRET, "other-secret-42"]);

  test("masks the plain value", () => {
    assert.equal(masker.maskString(`password is ${SECRET}!`), `password is ${MASK}!`);
    assert.equal(masker.maskString("x other-secret-42 y"), `x ${MASK} y`);
  });

  test("masks the JSON-escaped value", () => {
    const json = JSON.stringify({ password: SECRET });
    const masked = masker.maskString(json);
    assertNoLeak(masked);
    assert.equal(masked, `{"password":"${MASK}"}`);
    const python = `{"password": "${leakedForms(SECRET)[2]}"}`;
    assert.equal(masker.maskString(python), `{"password": "${MASK}"}`);
  });

  test("masks base64, alone and embedded at every byte offset of a larger blob", () => {
    assert.equal(masker.maskString(Buffer.from(SECRET).toString("base64")), MASK);
    for (const prefix of ["", "a", "ab", "abc", "abcd"]) {
      for (const suffix of ["", "x", "xy", "xyz"]) {
        for (const alphabet of ["base64", "base64url"] as const) {
          const blob = Buffer.from(`${prefix}${SECRET}${suffix}`).toString(alphabet);
          const masked = masker.maskString(`data: ${blob}`);
          assert.ok(masked.includes(MASK), `not masked: prefix=${prefix} suffix=${suffix} ${alphabet}`);
          // What is left of the encoding cannot decode back to the secret.
          assert.ok(!Buffer.from(masked.replace("data: ", "").replace(MASK, ""), alphabet).toString().includes(SECRET));
        }
      }
    }
  });

  test("leaves other text alone", () => {
    assert.equal(masker.maskString("nothing to see"), "nothing to see");
    assert.equal(new SecretMasker().maskString(SECRET), SECRET);
  });
});

describe("MaskingStream", () => {
  const text =
    `start ${SECRET} middle ${JSON.stringify({ pw: SECRET })} base64 ${Buffer.from(SECRET).toString("base64")} ` +
    `embedded ${Buffer.from(`zz${SECRET}zz`).toString("base64")} end\n`;
  const expected = new SecretMasker([SECRET]).maskString(text);

  test("a secret split across writes at every position is masked", () => {
    const bytes = Buffer.from(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const stream = new SecretMasker([SECRET]).stream();
      const out = Buffer.concat([
        stream.write(bytes.subarray(0, cut)),
        stream.write(bytes.subarray(cut)),
        stream.end(),
      ]);
      assert.equal(out.toString(), expected, `cut at ${cut}`);
    }
  });

  test("byte-by-byte writes (split UTF-8 characters too) give the same output", () => {
    const stream = new SecretMasker([SECRET]).stream();
    const pieces: Uint8Array[] = [];
    for (const byte of Buffer.from(text)) pieces.push(stream.write(Uint8Array.of(byte)));
    pieces.push(stream.end());
    const out = Buffer.concat(pieces).toString();
    assert.equal(out, expected);
    assertNoLeak(out);
  });

  test("holds back only a possible start of a secret, and releases it at the end", () => {
    const stream = new SecretMasker(["hunter2-secret"]).stream();
    assert.equal(Buffer.from(stream.write(Buffer.from("line one\n"))).toString(), "line one\n");
    assert.equal(Buffer.from(stream.write(Buffer.from("pass: hunt"))).toString(), "pass: ");
    assert.equal(Buffer.from(stream.write(Buffer.from("ing season\n"))).toString(), "hunting season\n");
    assert.equal(Buffer.from(stream.write(Buffer.from("tail hunter"))).toString(), "tail ");
    assert.equal(Buffer.from(stream.end()).toString(), "hunter");
  });

  test("secrets added after the stream was created are masked", () => {
    const masker = new SecretMasker();
    const stream = masker.stream();
    masker.add(["late-secret-value"]);
    assert.equal(Buffer.from(stream.write(Buffer.from("x late-secret-value y\n"))).toString(), `x ${MASK} y\n`);
  });
});
