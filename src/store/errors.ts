/**
 * Typed storage errors. Both adapters (PostgreSQL via `pg`, embedded PGlite) translate every failure into one of
 * these classes in exactly one place (`toStoreError`), so callers decide retry vs give up from the class (or from
 * `retryable`), never from message text. They extend the project's one error family (`StacklError`), so the server
 * maps them to gRPC codes without knowing about the store.
 */
import { ErrorCode, StacklError } from "../errors.js";

export interface StoreErrorOptions {
  /** The PostgreSQL SQLSTATE, when the server reported one. */
  sqlState?: string;
  /** Extra structured details (never secrets, never row contents). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

/** Base class of all errors thrown by `src/store`. */
export class StoreError extends StacklError {
  /** The PostgreSQL SQLSTATE, when the server reported one. */
  readonly sqlState: string | undefined;

  constructor(code: ErrorCode, message: string, opts: StoreErrorOptions & { retryable?: boolean } = {}) {
    super(code, message, {
      retryable: opts.retryable,
      details: { ...opts.details, ...(opts.sqlState === undefined ? {} : { sql_state: opts.sqlState }) },
      cause: opts.cause,
    });
    this.sqlState = opts.sqlState;
  }
}

/**
 * The database cannot be reached right now (connection refused or reset, server shutting down or starting up,
 * connection pool timed out). Retryable: the same `Db` recovers on its own once the server is back.
 * When thrown by COMMIT, the outcome of the transaction is unknown (`details.commit_outcome_unknown`).
 */
export class StoreUnavailableError extends StoreError {
  constructor(message: string, opts: StoreErrorOptions = {}) {
    super(ErrorCode.Unavailable, message, { ...opts, retryable: true });
  }
}

/** The call's deadline (`timeoutMs`) passed; the running statement was cancelled on the server. */
export class StoreTimeoutError extends StoreError {
  constructor(message: string, opts: StoreErrorOptions = {}) {
    super(ErrorCode.DeadlineExceeded, message, { ...opts, retryable: true });
  }
}

/** The caller's `AbortSignal` fired; the running statement was cancelled on the server. */
export class StoreAbortedError extends StoreError {
  constructor(message: string, opts: StoreErrorOptions = {}) {
    super(ErrorCode.Cancelled, message, { ...opts, retryable: false });
  }
}

/**
 * The transaction lost a race with a concurrent one: serialization failure (40001) or deadlock (40P01). Nothing was
 * committed; re-running the whole transaction is safe and expected.
 */
export class SerializationFailureError extends StoreError {
  constructor(message: string, opts: StoreErrorOptions = {}) {
    super(ErrorCode.Conflict, message, { ...opts, retryable: true });
  }
}

/** A unique constraint (23505) rejected the write; `constraint` names it. */
export class UniqueViolationError extends StoreError {
  /** The violated constraint, e.g. `documents_pkey`. */
  readonly constraint: string | undefined;

  constructor(message: string, opts: StoreErrorOptions & { constraint?: string } = {}) {
    super(ErrorCode.AlreadyExists, message, {
      ...opts,
      retryable: false,
      details: { ...opts.details, ...(opts.constraint === undefined ? {} : { constraint: opts.constraint }) },
    });
    this.constraint = opts.constraint;
  }
}

/** Any other statement failure (syntax error, check violation, …): a bug or bad data, not worth retrying. */
export class StoreQueryError extends StoreError {
  constructor(message: string, opts: StoreErrorOptions = {}) {
    super(ErrorCode.Internal, message, { ...opts, retryable: false });
  }
}

/** The `Db` was closed; no further calls are accepted. */
export class StoreClosedError extends StoreError {
  constructor(message = "the database handle is closed") {
    super(ErrorCode.Unavailable, message, { retryable: false });
  }
}

/** Another live process (or this one) already has the PGlite data directory open. */
export class DataDirLockedError extends StoreError {
  readonly dataDir: string;
  /** PID of the process holding the lock. */
  readonly pid: number;

  constructor(dataDir: string, pid: number, lockPath: string) {
    super(
      ErrorCode.FailedPrecondition,
      `PGlite data directory ${dataDir} is already open in process ${pid} (lock file ${lockPath}); ` +
        "stop that process or use another data directory",
      { retryable: false, details: { data_dir: dataDir, pid, lock_file: lockPath } },
    );
    this.dataDir = dataDir;
    this.pid = pid;
  }
}

/** SQLSTATEs meaning "the server is going away or not there yet": retry against the same Db later. */
const unavailableSqlStates = new Set([
  "57P01", // admin_shutdown: terminating connection due to administrator command (fast shutdown, restart)
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: the database system is starting up / shutting down
  "53300", // too_many_connections
  "58000", // system_error (e.g. could not fork a backend)
]);

/** Node socket errors meaning the server is unreachable. */
const unavailableErrnos = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "ENOTFOUND",
]);

/**
 * `pg` reports lost connections and pool timeouts as plain `Error`s without a code. These are its exact messages
 * (pg 8.23 / pg-pool 3.14); this is the only place the store looks at message text, because the driver gives us
 * nothing else to go on.
 */
const pgConnectionLossMessages = [
  "Connection terminated unexpectedly",
  "Connection terminated",
  "Connection terminated due to connection timeout",
  "timeout exceeded when trying to connect",
  "Client has encountered a connection error and is not queryable",
  "Client was closed and is not queryable",
];

interface ErrorLike {
  message?: unknown;
  code?: unknown;
  constraint?: unknown;
  detail?: unknown;
  table?: unknown;
  errors?: unknown;
}

/** True when `err` (any shape) means "the database is not reachable right now". */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true;
  if (typeof err !== "object" || err === null) return false;
  const e = err as ErrorLike;
  if (typeof e.code === "string") {
    if (unavailableSqlStates.has(e.code) || e.code.startsWith("08") || unavailableErrnos.has(e.code)) return true;
  }
  if (typeof e.message === "string" && pgConnectionLossMessages.includes(e.message)) return true;
  // Node's net module reports "connect ECONNREFUSED" for every resolved address as an AggregateError.
  if (Array.isArray(e.errors) && e.errors.length > 0) return e.errors.every((inner) => isConnectionError(inner));
  return false;
}

/**
 * Translate any error thrown by `pg` or PGlite into a `StoreError`. Errors that already are `StoreError`s pass through.
 * `what` names the operation for the message (e.g. "query", "commit").
 */
export function toStoreError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const e = (typeof err === "object" && err !== null ? err : {}) as ErrorLike;
  const message = typeof e.message === "string" ? e.message : String(err);
  const sqlState = typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
  const details: Record<string, unknown> = { operation: what };
  if (typeof e.table === "string") details.table = e.table;

  if (isConnectionError(err)) {
    return new StoreUnavailableError(`database unavailable during ${what}: ${message}`, {
      sqlState,
      details,
      cause: err,
    });
  }
  switch (sqlState) {
    case "40001":
    case "40P01":
      return new SerializationFailureError(`${what} failed: ${message}`, { sqlState, details, cause: err });
    case "23505":
      return new UniqueViolationError(`${what} failed: ${message}`, {
        sqlState,
        details,
        cause: err,
        constraint: typeof e.constraint === "string" ? e.constraint : undefined,
      });
    case "57014":
      // query_canceled: only our own deadline/abort handling (or statement_timeout, which we set from the
      // deadline) cancels statements, so this is a deadline.
      return new StoreTimeoutError(`${what} cancelled: ${message}`, { sqlState, details, cause: err });
    default:
      return new StoreQueryError(`${what} failed: ${message}`, { sqlState, details, cause: err });
  }
}
