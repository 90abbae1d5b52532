import { type FieldViolation, StacklError } from "../errors.js";
import type { WorkMessage } from "./bus.js";

/** Longest `id` / `dedupId` accepted (they travel as message headers). */
export const MAX_WORK_ID_LENGTH = 256;

/** Throws `invalid_argument` unless `id` and `dedupId` are non-empty strings and `data` is a `Uint8Array`. */
export function validateWorkMessage(msg: WorkMessage, field = "msg"): void {
  const violations: FieldViolation[] = [];
  for (const key of ["id", "dedupId"] as const) {
    const v: unknown = msg[key];
    if (typeof v !== "string" || v.length === 0 || v.length > MAX_WORK_ID_LENGTH || /[\r\n]/.test(v)) {
      violations.push({
        field: `${field}.${key}`,
        message: `must be a non-empty single-line string of at most ${MAX_WORK_ID_LENGTH} characters`,
      });
    }
  }
  if (!(msg.data instanceof Uint8Array)) violations.push({ field: `${field}.data`, message: "must be a Uint8Array" });
  if (violations.length > 0) throw StacklError.invalid(violations);
}
