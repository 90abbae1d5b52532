/**
 * `Db` on PostgreSQL through a `pg` connection pool.
 *
 * - Every call has a deadline (`timeoutMs`, default 30 s) and an optional `AbortSignal`. When either ends while a
 *   statement runs, the statement is cancelled on the server (CancelRequest) and the call rejects at once with
 *   `StoreTimeoutError`/`StoreAbortedError`; the connection returns to the pool once the server confirms, or is
 *   destroyed if it does not within `cancelGraceMs`. Transactions also get `SET LOCAL statement_timeout` from the
 *   deadline, so the server enforces it on its own.
 * - Connection loss (server restart, `pg_terminate_backend`, network) never crashes the process: the pool and every
 *   client have `error` handlers. Calls during an outage fail with the retryable `StoreUnavailableError`; broken
 *   connections are discarded and the first call after recovery opens a fresh one, on the same `Db`.
 * - LISTEN/NOTIFY uses one dedicated connection that reconnects by itself (`pg-listener.ts`).
 */
import pg from "pg";
import type { Logger } from "pino";
import {
  beginStatement,
  type Db,
  type ListenOptions,
  type Queryable,
  type QueryResult,
  type TxOptions,
  type Unlisten,
} from "./db.js";
import { type CallOptions, Deadline } from "./deadline.js";
import { isConnectionError, StoreClosedError, StoreQueryError, StoreUnavailableError, toStoreError } from "./errors.js";
import { storeLogger } from "./logger.js";
import { sendCancelRequest } from "./pg-cancel.js";
import { PgListener } from "./pg-listener.js";
import { parserFor } from "./types.js";

export interface PgDbOptions {
  /** Connection string, `postgres://user:pass@host:port/db?…`. */
  url: string;
  /** Largest number of pooled connections (the LISTEN connection comes on top). @default 10 */
  maxConnections?: number;
  /** Give up opening a connection after this long (`pg` alone would wait forever). @default 5000 */
  connectionTimeoutMs?: number;
  /** Close pooled connections idle for this long. @default 10000 */
  idleTimeoutMs?: number;
  /** Deadline of a call that passes no `timeoutMs`. @default 30000 */
  defaultTimeoutMs?: number;
  /** Deadline of `ready()`. @default 2000 */
  readyTimeoutMs?: number;
  /**
   * After cancelling a statement, how long to wait for the server to stop it before destroying the connection;
   * also the budget of the ROLLBACK after a failed transaction.
   * @default 2000
   */
  cancelGraceMs?: number;
  /** Server-side `idle_in_transaction_session_timeout`, so a stuck client cannot hold locks forever. @default 60000 */
  idleInTransactionTimeoutMs?: number;
  /** `application_name`, visible in `pg_stat_activity` (the LISTEN connection adds `-listen`). @default "stackl" */
  applicationName?: string;
  /** First reconnect delay of the LISTEN connection. @default 250 */
  listenReconnectBaseMs?: number;
  /** Longest delay between reconnect attempts of the LISTEN connection. @default 5000 */
  listenReconnectCapMs?: number;
  /** Ping interval of the LISTEN connection (finds silently dropped connections). @default 15000 */
  listenPingIntervalMs?: number;
  /** Parent logger; the adapter logs with `component: "store"`. @default a silent logger */
  logger?: Logger;
}

type CompiledPgDbOptions = Required<Omit<PgDbOptions, "logger">> & { logger: Logger | undefined };

function compile(options: PgDbOptions): CompiledPgDbOptions {
  return {
    url: options.url,
    maxConnections: options.maxConnections ?? 10,
    connectionTimeoutMs: options.connectionTimeoutMs ?? 5000,
    idleTimeoutMs: options.idleTimeoutMs ?? 10_000,
    defaultTimeoutMs: options.defaultTimeoutMs ?? 30_000,
    readyTimeoutMs: options.readyTimeoutMs ?? 2000,
    cancelGraceMs: options.cancelGraceMs ?? 2000,
    idleInTransactionTimeoutMs: options.idleInTransactionTimeoutMs ?? 60_000,
    applicationName: options.applicationName ?? "stackl",
    listenReconnectBaseMs: options.listenReconnectBaseMs ?? 250,
    listenReconnectCapMs: options.listenReconnectCapMs ?? 5000,
    listenPingIntervalMs: options.listenPingIntervalMs ?? 15_000,
    logger: options.logger,
  };
}

/** Our type conventions (`types.ts`) for `pg`, without touching `pg`'s process-global parser table. */
const typeConfig: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (format === undefined || format === "text") {
      const parser = parserFor(oid);
      if (parser !== undefined) return parser;
    }
    return pg.types.getTypeParser(oid, format ?? "text");
  }) as pg.CustomTypesConfig["getTypeParser"],
};

/** `pg` honours `queryMode: "extended"` (one statement, as on PGlite) but @types/pg does not declare it. */
type StatementConfig = pg.QueryConfig & { queryMode?: "extended" };

/**
 * Create the adapter and check that the server answers (within `opts`, default the connection timeout), so a wrong
 * URL fails at startup rather than on the first request.
 */
export async function openPgDb(options: PgDbOptions, opts: CallOptions = {}): Promise<Db> {
  const compiled = compile(options);
  const db = new PgDb(compiled);
  try {
    await db.query("SELECT 1", [], { signal: opts.signal, timeoutMs: opts.timeoutMs ?? compiled.connectionTimeoutMs });
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

/**
 * A checked-out connection. Released exactly once; if one of its statements was cancelled, the release waits until
 * that statement has stopped (or the grace period ends, then the connection is destroyed).
 */
class Lease {
  readonly client: pg.PoolClient;
  #released = false;
  /** Set after a cancel: resolves to true when the connection must be destroyed. */
  #cancelled: Promise<boolean> | undefined;

  constructor(client: pg.PoolClient) {
    this.client = client;
  }

  /**
   * Remember that `running` was cancelled by `cancelRequest` (resolving to whether the server took the request). The
   * connection is reusable once both are done: the statement stopped AND the server has handled the cancel, else a
   * late cancel could hit the next statement on this connection. If that takes longer than `graceMs`, or the cancel
   * request failed, the connection is discarded.
   */
  cancelled(running: Promise<unknown>, cancelRequest: Promise<boolean>, graceMs: number): void {
    const settled = Promise.all([
      running.then(
        () => false,
        (err: unknown) => isConnectionError(err),
      ),
      cancelRequest,
    ]).then(([broken, delivered]) => broken || !delivered);
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), graceMs);
      timer.unref();
    });
    const previous = this.#cancelled ?? Promise.resolve(false);
    this.#cancelled = Promise.all([previous, Promise.race([settled, grace])]).then(([a, b]) => {
      clearTimeout(timer);
      return a || b;
    });
  }

  /** Wait for a cancelled statement to stop; true if the connection is unusable. */
  async settle(): Promise<boolean> {
    return this.#cancelled === undefined ? false : await this.#cancelled;
  }

  release(destroy: boolean): void {
    if (this.#released) return;
    this.#released = true;
    if (destroy || this.#cancelled === undefined) {
      this.client.release(destroy ? true : undefined);
      return;
    }
    void this.#cancelled.then((broken) => this.client.release(broken ? true : undefined));
  }
}

class PgDb implements Db {
  readonly kind = "postgres" as const;
  readonly #o: CompiledPgDbOptions;
  readonly #log: Logger;
  readonly #pool: pg.Pool;
  readonly #listener: PgListener;
  #closing: Promise<void> | undefined;

  constructor(o: CompiledPgDbOptions) {
    this.#o = o;
    this.#log = storeLogger(o.logger, "postgres");
    const clientConfig: pg.ClientConfig = {
      connectionString: o.url,
      connectionTimeoutMillis: o.connectionTimeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: o.applicationName,
      idle_in_transaction_session_timeout: o.idleInTransactionTimeoutMs,
      types: typeConfig,
    };
    this.#pool = new pg.Pool({ ...clientConfig, max: o.maxConnections, idleTimeoutMillis: o.idleTimeoutMs });
    // Idle connections that die (server restart, pg_terminate_backend) are reported here; without a listener Node
    // would crash on the unhandled 'error' event. The pool has already dropped the client.
    this.#pool.on("error", (err) => {
      this.#log.warn({ err }, "idle database connection lost");
    });
    // A checked-out client has no pool listener: a connection dying between two statements of a transaction must not
    // crash the process either. The failure surfaces on the next statement, which then discards the connection.
    this.#pool.on("connect", (client) => {
      client.on("error", (err) => {
        this.#log.debug({ err }, "database connection error");
      });
    });
    this.#listener = new PgListener({
      clientConfig: { ...clientConfig, application_name: `${o.applicationName}-listen` },
      logger: this.#log,
      reconnectBaseMs: o.listenReconnectBaseMs,
      reconnectCapMs: o.listenReconnectCapMs,
      pingIntervalMs: o.listenPingIntervalMs,
      statementTimeoutMs: o.connectionTimeoutMs,
    });
  }

  async query<R = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    opts?: CallOptions,
  ): Promise<QueryResult<R>> {
    const d = this.#deadline(opts, "query");
    return this.#withLease(d, async (lease) => {
      const res = await this.run<R>(lease, { text: sql, values: params ?? [], queryMode: "extended" }, d, "query");
      return { rows: res.rows, rowCount: res.rowCount ?? 0 };
    });
  }

  async exec(sql: string, opts?: CallOptions): Promise<void> {
    const d = this.#deadline(opts, "exec");
    await this.#withLease(d, (lease) => this.run(lease, { text: sql }, d, "exec"));
  }

  async tx<T>(fn: (q: Queryable) => Promise<T>, opts: TxOptions = {}): Promise<T> {
    const d = this.#deadline(opts, "transaction");
    return this.#withLease(d, async (lease) => {
      const remaining = d.remainingMs();
      const timeout = Number.isFinite(remaining)
        ? `; SET LOCAL statement_timeout = ${Math.max(1, Math.ceil(remaining))}`
        : "";
      await this.run(lease, { text: `${beginStatement(opts.isolation ?? "read committed")}${timeout}` }, d, "begin");
      const handle = new PgTxQueryable(this, lease, d);
      let result: T;
      try {
        result = await fn(handle);
        // The deadline bounds the whole transaction: late work is not committed.
        d.check();
      } catch (err) {
        handle.end();
        await this.#rollback(lease);
        throw err;
      }
      handle.end();
      let res: pg.QueryResult;
      try {
        res = await this.run(lease, { text: "COMMIT" }, d, "commit");
      } catch (err) {
        if (err instanceof StoreUnavailableError) {
          throw new StoreUnavailableError(`${err.message} (commit outcome unknown)`, {
            sqlState: err.sqlState,
            details: { commit_outcome_unknown: true },
            cause: err,
          });
        }
        await this.#rollback(lease);
        throw err;
      }
      // COMMIT of a transaction in which a statement failed (and the callback swallowed the error) rolls back.
      if (res.command === "ROLLBACK") {
        throw new StoreQueryError("transaction rolled back: a statement in it failed and its error was swallowed", {
          sqlState: "25P02",
        });
      }
      return result;
    });
  }

  listen(channel: string, onMessage: (payload: string) => void, opts?: ListenOptions): Promise<Unlisten> {
    this.#assertOpen();
    return this.#listener.listen(channel, onMessage, opts);
  }

  async notify(channel: string, payload: string, opts?: CallOptions): Promise<void> {
    await this.query("SELECT pg_notify($1, $2)", [channel, payload], opts);
  }

  async ready(opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    if (this.#closing !== undefined) return false;
    try {
      await this.query("SELECT 1", [], { signal: opts.signal, timeoutMs: this.#o.readyTimeoutMs });
      return true;
    } catch (err) {
      this.#log.debug({ err }, "readiness check failed");
      return false;
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#listener.close();
      await this.#pool.end();
    })();
    return this.#closing;
  }

  /**
   * Run one statement on `lease` within `d`. When `d` ends first, the statement is cancelled on the server and the
   * call rejects at once. (Used by `PgTxQueryable` too.)
   */
  async run<R>(
    lease: Lease,
    config: StatementConfig,
    d: Deadline,
    what: string,
  ): Promise<pg.QueryResult<R & pg.QueryResultRow>> {
    // After a cancelled statement, wait for it to stop rather than queueing behind it on the same connection.
    if (await lease.settle()) {
      throw new StoreUnavailableError(`${what} refused: the connection's cancelled statement did not stop`);
    }
    d.check();
    const running = lease.client.query<R & pg.QueryResultRow>(config);
    try {
      return await d.race(running, () => {
        lease.cancelled(running, sendCancelRequest(lease.client, this.#o.cancelGraceMs), this.#o.cancelGraceMs);
      });
    } catch (err) {
      throw toStoreError(err, what);
    }
  }

  /** Check out a connection within `d`, run `fn`, release it (discarding it if it may be broken). */
  async #withLease<T>(d: Deadline, fn: (lease: Lease) => Promise<T>): Promise<T> {
    const lease = await this.#acquire(d);
    let destroy = false;
    try {
      return await fn(lease);
    } catch (err) {
      const status = lease.client.getTransactionStatus();
      destroy = isConnectionError(err) || status === "T" || status === "E";
      throw err;
    } finally {
      lease.release(destroy);
    }
  }

  /**
   * ROLLBACK after a failed transaction, with its own small budget (the call's deadline may be spent). Waits for a
   * cancelled statement to stop first. A connection that cannot roll back is discarded by `#withLease`, since its
   * transaction status is still "in transaction".
   */
  async #rollback(lease: Lease): Promise<void> {
    if (await lease.settle()) return;
    const d = Deadline.of(undefined, this.#o.cancelGraceMs, "rollback");
    try {
      await this.run(lease, { text: "ROLLBACK" }, d, "rollback");
    } catch (err) {
      this.#log.warn({ err }, "rollback failed; discarding the connection");
    }
  }

  /** Check out a connection within `d`. A connection that arrives after `d` ended goes straight back. */
  async #acquire(d: Deadline): Promise<Lease> {
    d.check();
    const pending = this.#pool.connect();
    try {
      const client = await d.race(pending, () => {
        pending.then(
          (c) => c.release(),
          () => {},
        );
      });
      return new Lease(client);
    } catch (err) {
      throw toStoreError(err, "connect");
    }
  }

  #deadline(opts: CallOptions | undefined, what: string): Deadline {
    this.#assertOpen();
    return Deadline.of(opts, this.#o.defaultTimeoutMs, what);
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) throw new StoreClosedError();
  }
}

/** The handle given to `tx` callbacks: statements on the transaction's connection, within its deadline. */
class PgTxQueryable implements Queryable {
  readonly #db: PgDb;
  readonly #lease: Lease;
  readonly #d: Deadline;
  #ended = false;

  constructor(db: PgDb, lease: Lease, d: Deadline) {
    this.#db = db;
    this.#lease = lease;
    this.#d = d;
  }

  end(): void {
    this.#ended = true;
  }

  async query<R = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    opts?: CallOptions,
  ): Promise<QueryResult<R>> {
    this.#assertActive();
    const config: StatementConfig = { text: sql, values: params ?? [], queryMode: "extended" };
    const res = await this.#db.run<R>(this.#lease, config, this.#d.within(opts, "query"), "query");
    return { rows: res.rows, rowCount: res.rowCount ?? 0 };
  }

  async exec(sql: string, opts?: CallOptions): Promise<void> {
    this.#assertActive();
    await this.#db.run(this.#lease, { text: sql }, this.#d.within(opts, "exec"), "exec");
  }

  #assertActive(): void {
    if (this.#ended) throw new StoreQueryError("transaction handle used after its transaction ended");
  }
}
