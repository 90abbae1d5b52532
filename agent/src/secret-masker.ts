/**
 * Masks secret values in job output before a single byte leaves the agent.
 *
 * Every secret is searched in several forms (see `secretForms`): as is, JSON-escaped (as `JSON.stringify` and as
 * Python's `json.dumps` with ASCII escapes write it), and base64/base64url encoded, including the part of the
 * encoding that is fixed when the secret sits at any byte offset inside a larger encoded blob. Matching is done on
 * bytes, so a chunk boundary that splits a multi-byte character changes nothing.
 *
 * A log stream is masked by a `MaskingStream`: a secret split across two writes is still found, because the stream
 * holds back the shortest tail that could be the start of a secret form (usually nothing: a tail only waits when
 * it is a proper prefix of some form) until the next write or the end of the stream.
 */

/** What a secret is replaced with. */
export const MASK = "***";
/** Base64 fragments shorter than this are not masked on their own (they would mask unrelated text). */
export const BASE64_MIN_FRAGMENT_CHARS = 8;

const MASK_BYTES = Buffer.from(MASK);

/** `value` as JSON string contents with non-ASCII characters escaped as `\uXXXX` (Python's `json.dumps`). */
function jsonAsciiEscaped(value: string): string {
  return JSON.stringify(value)
    .slice(1, -1)
    .replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * The part of the base64 encoding of `secret` that is the same whatever bytes surround it when the secret starts
 * `offset` bytes (0, 1 or 2) into a 3-byte group: the characters whose 6 bits all come from the secret.
 */
function base64Fragment(secret: Buffer, offset: number, alphabet: "base64" | "base64url"): string {
  const encoded = Buffer.concat([Buffer.alloc(offset), secret]).toString(alphabet);
  const first = Math.ceil((8 * offset) / 6);
  const end = Math.floor((8 * (offset + secret.length)) / 6);
  return encoded.slice(first, end);
}

/** Every form of `value` that is masked, longest first, without duplicates. Empty for an empty value. */
export function secretForms(value: string): string[] {
  if (value === "") return [];
  const forms = new Set<string>([value, JSON.stringify(value).slice(1, -1), jsonAsciiEscaped(value)]);
  const bytes = Buffer.from(value);
  for (const alphabet of ["base64", "base64url"] as const) {
    forms.add(bytes.toString(alphabet));
    for (const offset of [0, 1, 2]) {
      const fragment = base64Fragment(bytes, offset, alphabet);
      if (fragment.length >= BASE64_MIN_FRAGMENT_CHARS) forms.add(fragment);
    }
  }
  forms.delete("");
  return [...forms].sort((a, b) => b.length - a.length);
}

/** The set of secret values of one job, and the masking of strings and streams against them. */
export class SecretMasker {
  private forms: Buffer[] = [];
  private maxFormLength = 0;

  constructor(values: Iterable<string> = []) {
    this.add(values);
  }

  /** Adds secret values (e.g. once they are resolved). Streams created earlier see them too. */
  add(values: Iterable<string>): void {
    const all = new Set(this.forms.map((f) => f.toString("latin1")));
    for (const value of values) {
      for (const form of secretForms(value)) all.add(Buffer.from(form).toString("latin1"));
    }
    this.forms = [...all].map((f) => Buffer.from(f, "latin1")).sort((a, b) => b.length - a.length);
    this.maxFormLength = this.forms[0]?.length ?? 0;
  }

  /** True when there is nothing to mask. */
  get empty(): boolean {
    return this.forms.length === 0;
  }

  /** Masks a complete string (error messages, agent-written lines). */
  maskString(text: string): string {
    if (this.empty) return text;
    return this.mask(Buffer.from(text), true).out.toString();
  }

  /** Masks complete bytes. */
  maskBytes(data: Uint8Array): Uint8Array {
    if (this.empty) return data;
    return this.mask(Buffer.from(data.buffer, data.byteOffset, data.byteLength), true).out;
  }

  /** A masking stream for one log stream of a job. */
  stream(): MaskingStream {
    return new MaskingStream(this);
  }

  /**
   * Masks `data`. With `final`, everything is emitted; otherwise the longest tail that is a proper prefix of some
   * form is held back and returned as `rest`.
   * @internal
   */
  mask(data: Buffer, final: boolean): { out: Buffer; rest: Buffer } {
    const forms = this.forms;
    const pieces: Buffer[] = [];
    let from = 0;
    for (;;) {
      // Earliest match; at equal positions the longest form wins (forms are sorted longest first).
      let at = -1;
      let length = 0;
      for (const form of forms) {
        const i = data.indexOf(form, from);
        if (i !== -1 && (at === -1 || i < at)) {
          at = i;
          length = form.length;
        }
      }
      if (at === -1) break;
      pieces.push(data.subarray(from, at), MASK_BYTES);
      from = at + length;
    }
    let keep = 0;
    if (!final) {
      const tail = data.subarray(from);
      for (let k = Math.min(tail.length, this.maxFormLength - 1); k > 0; k--) {
        const suffix = tail.subarray(tail.length - k);
        if (forms.some((form) => form.length > k && form.subarray(0, k).equals(suffix))) {
          keep = k;
          break;
        }
      }
    }
    pieces.push(data.subarray(from, data.length - keep));
    return { out: Buffer.concat(pieces), rest: Buffer.from(data.subarray(data.length - keep)) };
  }
}

/** Masks one byte stream (a job's stdout or stderr), including secrets split across writes. */
export class MaskingStream {
  private held: Buffer = Buffer.alloc(0);

  constructor(private readonly masker: SecretMasker) {}

  /** Masks `data`; returns the bytes that may be emitted now (possibly none). */
  write(data: Uint8Array): Uint8Array {
    const input = this.held.length === 0 ? Buffer.from(data) : Buffer.concat([this.held, data]);
    if (this.masker.empty) {
      this.held = Buffer.alloc(0);
      return input;
    }
    const { out, rest } = this.masker.mask(input, false);
    this.held = rest;
    return out;
  }

  /** Bytes held back so far (a possible start of a secret that never completed), masked. */
  end(): Uint8Array {
    const held = this.held;
    this.held = Buffer.alloc(0);
    return held.length === 0 ? held : this.masker.maskBytes(held);
  }
}
