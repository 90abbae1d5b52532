import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { StructSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/stackl/v1/tasks_pb.js";
import { ErrorCode, type FieldViolation, StacklError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import { requestIdKey, requestLoggerKey } from "./context-keys.js";

/** Violations listed in an error message; the rest are summarised (all of them are in the details). */
const MAX_VIOLATIONS_IN_MESSAGE = 10;

/** The one mapping from STACKL error codes to Connect/gRPC codes. */
export function connectCodeOf(code: ErrorCode): Code {
  switch (code) {
    case ErrorCode.InvalidArgument:
      return Code.InvalidArgument;
    case ErrorCode.NotFound:
      return Code.NotFound;
    case ErrorCode.AlreadyExists:
      return Code.AlreadyExists;
    case ErrorCode.Conflict:
      return Code.Aborted; // optimistic-concurrency conflict: retry at a higher level (read, modify, write)
    case ErrorCode.FailedPrecondition:
      return Code.FailedPrecondition;
    case ErrorCode.PermissionDenied:
      return Code.PermissionDenied;
    case ErrorCode.Unauthenticated:
      return Code.Unauthenticated;
    case ErrorCode.ResourceExhausted:
      return Code.ResourceExhausted;
    case ErrorCode.Unavailable:
      return Code.Unavailable;
    case ErrorCode.DeadlineExceeded:
      return Code.DeadlineExceeded;
    case ErrorCode.Cancelled:
      return Code.Canceled;
    case ErrorCode.Unimplemented:
      return Code.Unimplemented;
    case ErrorCode.StaleEpoch:
      return Code.Aborted; // a failed test-and-set on the fencing epoch: the writer lost its claim
    case ErrorCode.PolicyRejected:
      return Code.FailedPrecondition; // the request is valid; the estate's policies do not allow it
    case ErrorCode.Internal:
      return Code.Internal;
    default: {
      const never: never = code;
      return never;
    }
  }
}

function violationsMessage(violations: readonly FieldViolation[]): string {
  const shown = violations.slice(0, MAX_VIOLATIONS_IN_MESSAGE).map((v) => `${v.field}: ${v.message}`);
  const more = violations.length - shown.length;
  return `${violations.length} invalid fields: ${shown.join("; ")}${more > 0 ? `; and ${more} more` : ""}`;
}

function detailsStruct(details: Record<string, unknown>): JsonObject | undefined {
  if (Object.keys(details).length === 0) return undefined;
  try {
    return JSON.parse(JSON.stringify(details, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)));
  } catch {
    return undefined;
  }
}

/**
 * A StacklError as a ConnectError: mapped code, the message (listing field violations when there are several), and
 * typed details a client can decode: one `stackl.v1.ErrorInfo` for the error, one per field violation (with
 * `field`), and the error's structured `details` as a `google.protobuf.Struct`. Internal errors keep their text out
 * of the response.
 */
export function fromStacklError(err: StacklError, requestId: string): ConnectError {
  const code = connectCodeOf(err.code);
  if (code === Code.Internal) return internalError(requestId);
  const message = err.violations.length > 1 ? violationsMessage(err.violations) : err.message;
  const details: ConstructorParameters<typeof ConnectError>[3] = [
    { desc: ErrorInfoSchema, value: { code: err.code, message: err.message, retryable: err.retryable } },
    ...err.violations.map((v) => ({
      desc: ErrorInfoSchema,
      value: { code: ErrorCode.InvalidArgument, message: v.message, field: v.field, retryable: false },
    })),
  ];
  const struct = detailsStruct(err.details);
  if (struct !== undefined) details.push({ desc: StructSchema, value: fromJson(StructSchema, struct) });
  return new ConnectError(message, code, undefined, details, err);
}

function internalError(requestId: string): ConnectError {
  const ref = requestId === "" ? "" : ` (request id ${requestId})`;
  return new ConnectError(`internal error${ref}; details are in the server log`, Code.Internal);
}

/**
 * Why a call's signal aborted, as the client should see it: the deadline (DEADLINE_EXCEEDED) and a server shutdown
 * (UNAVAILABLE) keep their code; anything else means the client went away (connect-node reports a reset stream or a
 * closed connection as INTERNAL), which is a cancellation, not a server failure.
 */
export function abortReason(reason: unknown): ConnectError {
  if (reason instanceof ConnectError && (reason.code === Code.DeadlineExceeded || reason.code === Code.Unavailable)) {
    return reason;
  }
  if (reason instanceof ConnectError && reason.code === Code.Canceled) return reason;
  return new ConnectError("the client cancelled the call", Code.Canceled, undefined, undefined, reason);
}

function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");
}

/**
 * Turns whatever a handler threw into what goes on the wire: ConnectErrors pass through; StacklErrors are mapped by
 * `fromStacklError`; an abort caused by the call's own signal (deadline, client cancel, shutdown) becomes that
 * signal's reason; anything else is INTERNAL with a generic message, logged here with its stack.
 */
export function toConnectError(
  err: unknown,
  signal: AbortSignal,
  requestId: string,
  logger: Logger | undefined,
): ConnectError {
  if (signal.aborted && (err === signal.reason || isAbortError(err))) {
    return abortReason(signal.reason);
  }
  if (err instanceof ConnectError) return err;
  if (err instanceof StacklError) {
    if (err.code === ErrorCode.Internal) logger?.error({ err }, "internal error");
    return fromStacklError(err, requestId);
  }
  logger?.error({ err }, "unexpected error");
  return internalError(requestId);
}

/**
 * The ONE place where errors become Connect/gRPC codes. Runs innermost (closest to the handler), so the logging
 * and metrics interceptors see the final code. Wraps response streams so errors thrown mid-stream are mapped too.
 */
export function errorInterceptor(fallbackLogger: Logger): Interceptor {
  return (next) => async (req) => {
    const map = (err: unknown): ConnectError => {
      const requestLogger = req.contextValues.get(requestLoggerKey);
      const logger = requestLogger === requestLoggerKey.defaultValue ? fallbackLogger : requestLogger;
      return toConnectError(err, req.signal, req.contextValues.get(requestIdKey), logger);
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      throw map(err);
    }
    if (!res.stream) return res;
    const source = res.message;
    return {
      ...res,
      message: (async function* mapped() {
        try {
          yield* source;
        } catch (err) {
          throw map(err);
        }
      })(),
    };
  };
}
