/**
 * The one error family of STACKL. Every layer throws `StacklError` (or lets a store/bus error be translated into one);
 * the server maps it to a Connect/gRPC code in exactly one interceptor (`server/error-interceptor.ts`). Workers decide
 * nak vs term from `retryable`, never from message text.
 */

/** Stable error codes. Each maps to one gRPC code (see `grpcCodeOf`). */
export const ErrorCode = {
  InvalidArgument: "invalid_argument",
  NotFound: "not_found",
  AlreadyExists: "already_exists",
  /** Optimistic-concurrency conflict (expected revision/generation/epoch mismatch). */
  Conflict: "conflict",
  /** The request is valid but the system is not in a state that allows it (e.g. referenced document). */
  FailedPrecondition: "failed_precondition",
  PermissionDenied: "permission_denied",
  Unauthenticated: "unauthenticated",
  ResourceExhausted: "resource_exhausted",
  /** A dependency (database, bus) is unavailable right now; retrying later may succeed. */
  Unavailable: "unavailable",
  DeadlineExceeded: "deadline_exceeded",
  Cancelled: "cancelled",
  Unimplemented: "unimplemented",
  /** A write carried a stale fencing epoch. */
  StaleEpoch: "stale_epoch",
  /** A placement policy rejected the request. */
  PolicyRejected: "policy_rejected",
  Internal: "internal",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** One violation of a validation rule. */
export interface FieldViolation {
  /** Path of the offending field, e.g. `documents[2].service.functional_requirements[0]`. */
  field: string;
  message: string;
}

export interface StacklErrorOptions {
  /** Field violations for `invalid_argument`. */
  violations?: FieldViolation[];
  /** Whether another attempt may succeed. @default true for unavailable/deadline_exceeded/conflict, false otherwise */
  retryable?: boolean;
  /** Extra structured details, returned to clients. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class StacklError extends Error {
  override readonly name = "StacklError";
  readonly code: ErrorCode;
  readonly violations: FieldViolation[];
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: StacklErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.violations = opts.violations ?? [];
    this.retryable = opts.retryable ?? defaultRetryable(code);
    this.details = opts.details ?? {};
  }

  /** A validation error naming every violated field. */
  static invalid(violations: FieldViolation[]): StacklError {
    const first = violations[0];
    const more = violations.length > 1 ? ` (and ${violations.length - 1} more)` : "";
    const message = first === undefined ? "invalid argument" : `${first.field}: ${first.message}${more}`;
    return new StacklError(ErrorCode.InvalidArgument, message, { violations });
  }

  static notFound(what: string): StacklError {
    return new StacklError(ErrorCode.NotFound, `${what} not found`);
  }
}

function defaultRetryable(code: ErrorCode): boolean {
  switch (code) {
    case ErrorCode.Unavailable:
    case ErrorCode.DeadlineExceeded:
    case ErrorCode.Conflict:
    case ErrorCode.ResourceExhausted:
      return true;
    case ErrorCode.InvalidArgument:
    case ErrorCode.NotFound:
    case ErrorCode.AlreadyExists:
    case ErrorCode.FailedPrecondition:
    case ErrorCode.PermissionDenied:
    case ErrorCode.Unauthenticated:
    case ErrorCode.Cancelled:
    case ErrorCode.Unimplemented:
    case ErrorCode.StaleEpoch:
    case ErrorCode.PolicyRejected:
    case ErrorCode.Internal:
      return false;
    default: {
      const never: never = code;
      return never;
    }
  }
}

/** True when `err` is a StacklError with the given code. */
export function isStacklError(err: unknown, code?: ErrorCode): err is StacklError {
  return err instanceof StacklError && (code === undefined || err.code === code);
}
