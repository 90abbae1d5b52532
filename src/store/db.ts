/**
 * The small database interface both adapters implement: PostgreSQL through a `pg` pool (`pg-db.ts`) and embedded
 * PGlite (`pglite-db.ts`). Repositories take a `Queryable` so the same code runs inside and outside a transaction.
 * Result values follow one convention on both adapters (see `types.ts`); failures are `StoreError`s (`errors.ts`).
 */
import type { CallOptions } from "./deadline.js";

export type { CallOptions } from "./deadline.js";

/** Which adapter is behind a `Db`. */
export type DbKind = "postgres" | "pglite";

export interface QueryResult<R> {
  rows: R[];
  /** Rows returned (SELECT) or affected (INSERT/UPDATE/DELETE); 0 for other commands. */
  rowCount: number;
}

/** Something that runs statements: the `Db` itself or the transaction handle given to `tx` callbacks. */
export interface Queryable {
  /**
   * Run ONE statement with `$1…$n` parameters (extended protocol on both adapters). Inside a transaction the
   * deadline is the narrower of the transaction's and `opts`.
   */
  query<R = Record<string, unknown>>(sql: string, params?: unknown[], opts?: CallOptions): Promise<QueryResult<R>>;
  /** Run a script of one or more statements without parameters (simple protocol), e.g. a migration file. */
  exec(sql: string, opts?: CallOptions): Promise<void>;
}

export type Isolation = "read committed" | "repeatable read" | "serializable";

export interface TxOptions extends CallOptions {
  /** @default "read committed" */
  isolation?: Isolation;
}

export interface ListenOptions {
  /** Bounds the LISTEN round trip (not the subscription's lifetime). */
  signal?: AbortSignal;
  /**
   * Called after the notification connection was lost and re-established (PostgreSQL restart, network drop).
   * Notifications sent while it was down are lost: re-read whatever state the channel announces. Never called by
   * PGlite (it cannot lose its connection).
   */
  onReconnect?: () => void;
}

/** Stops a subscription; resolves once the channel is no longer listened to (if this was its last subscriber). */
export type Unlisten = () => Promise<void>;

export interface Db extends Queryable {
  readonly kind: DbKind;
  /**
   * Run `fn` in a transaction on one connection: COMMIT when it resolves, ROLLBACK when it throws (the error is
   * rethrown, translated to a `StoreError` when it came from the database). The deadline bounds the whole
   * transaction including waiting for a connection. `SerializationFailureError` means: run the whole `tx` again.
   * Do not call `db.query` from inside `fn`; use the handle `q` (on PGlite that would deadlock and is rejected).
   */
  tx<T>(fn: (q: Queryable) => Promise<T>, opts?: TxOptions): Promise<T>;
  /**
   * LISTEN on `channel` (lower-case letters, digits and `_`; at most 63 chars) and call `onMessage` with each
   * NOTIFY payload. PostgreSQL uses one dedicated connection that re-LISTENs after reconnecting and then calls
   * `opts.onReconnect`.
   */
  listen(channel: string, onMessage: (payload: string) => void, opts?: ListenOptions): Promise<Unlisten>;
  /** NOTIFY `channel` with `payload` (delivered at commit when run inside a transaction via `q`). */
  notify(channel: string, payload: string, opts?: CallOptions): Promise<void>;
  /** Health check: `select 1` within a short timeout. Never throws. */
  ready(opts?: { signal?: AbortSignal }): Promise<boolean>;
  /** Wait for running work, release connections (PGlite: CHECKPOINT, close, drop the data-dir lock). Idempotent. */
  close(): Promise<void>;
}

/** Channel names are restricted so they never need quoting and fold identically on both adapters. */
const channelPattern = /^[a-z_][a-z0-9_]{0,62}$/;

/** Throws a `RangeError` unless `channel` is a valid LISTEN/NOTIFY channel name. */
export function assertChannelName(channel: string): void {
  if (!channelPattern.test(channel)) {
    throw new RangeError(
      `invalid channel name ${JSON.stringify(channel)}: use lower-case letters, digits and _ (max 63 chars)`,
    );
  }
}

/** Statement that opens a transaction at `isolation`. */
export function beginStatement(isolation: Isolation): string {
  switch (isolation) {
    case "read committed":
      return "BEGIN ISOLATION LEVEL READ COMMITTED";
    case "repeatable read":
      return "BEGIN ISOLATION LEVEL REPEATABLE READ";
    case "serializable":
      return "BEGIN ISOLATION LEVEL SERIALIZABLE";
    default: {
      const never: never = isolation;
      throw new RangeError(`unknown isolation level ${String(never)}`);
    }
  }
}
