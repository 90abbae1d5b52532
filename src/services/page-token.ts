import { StacklError } from "../errors.js";

/** Default and maximum page sizes of every List RPC. */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

export function pageSize(requested: number, field = "page_size"): number {
  if (requested < 0) throw StacklError.invalid([{ field, message: "must not be negative" }]);
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  return Math.min(requested, MAX_PAGE_SIZE);
}

/** Opaque page tokens: base64url JSON of a keyset position. */
export function encodePageToken(position: unknown): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

export function decodePageToken<T>(token: string, check: (v: unknown) => v is T, field = "page_token"): T | undefined {
  if (token === "") return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (check(value)) return value;
  } catch {
    // fall through
  }
  throw StacklError.invalid([{ field, message: "is not a token returned by this API" }]);
}
