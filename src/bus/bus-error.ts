import { ErrorCode, StacklError } from "../errors.js";

/**
 * Translates anything a bus operation threw into the one error family. Aborts become `cancelled` (or
 * `deadline_exceeded` for a timeout signal); everything else from the transport is `unavailable` (retryable),
 * because the bus is a dependency whose failures are transient from the caller's point of view.
 */
export function toBusError(err: unknown, what: string): StacklError {
  if (err instanceof StacklError) return err;
  const name = err instanceof Error || err instanceof DOMException ? err.name : "";
  const message = err instanceof Error ? err.message : String(err);
  if (name === "TimeoutError" && err instanceof DOMException) {
    return new StacklError(ErrorCode.DeadlineExceeded, `${what}: deadline exceeded`, { cause: err });
  }
  if (name === "AbortError") {
    return new StacklError(ErrorCode.Cancelled, `${what}: cancelled`, { cause: err });
  }
  return new StacklError(ErrorCode.Unavailable, `${what}: ${message}`, { cause: err });
}
