/**
 * `Db` on embedded PGlite (PostgreSQL compiled to WebAssembly, in this process): the zero-install default of
 * `stackl dev` and the fast path for unit tests. Quick start, not production: PGlite never fsyncs (pglite#1107).
 *
 * - One connection: a FIFO mutex serialises transactions and statements, so a statement outside a transaction never
 *   runs inside someone else's. Calling `db.query` from inside a `db.tx` callback would wait for itself; it is
 *   rejected with a clear error instead.
 * - Deadlines and signals bound the wait for the connection and are checked before every statement. A statement that
 *   already runs cannot be interrupted (it runs synchronously in WebAssembly, and PGlite ignores statement_timeout).
 * - A data directory is locked against a second opener (`data-dir-lock.ts`); `close()` checkpoints, closes and
 *   releases the lock. Without a data directory the database lives in memory.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import { PGlite, type Transaction } from "@electric-sql/pglite";
import type { Logger } from "pino";
import { ErrorCode } from "../errors.js";
import { acquireDataDirLock, type DataDirLock } from "./data-dir-lock.js";
import {
  assertChannelName,
  type Db,
  type Isolation,
  type ListenOptions,
  type Queryable,
  type QueryResult,
  type TxOptions,
  type Unlisten,
} from "./db.js";
import { type CallOptions, Deadline } from "./deadline.js";
import { StoreClosedError, StoreError, StoreQueryError, toStoreError } from "./errors.js";
import { storeLogger } from "./logger.js";
import { Mutex } from "./mutex.js";
import { pgliteParsers } from "./types.js";

export interface PgliteDbOptions {
  /** Directory holding the database files (created if missing). @default undefined: in memory, nothing persisted */
  dataDir?: string;
  /** Deadline of a call that passes no `timeoutMs`. @default 30000 */
  defaultTimeoutMs?: number;
  /** Deadline of `ready()`. @default 2000 */
  readyTimeoutMs?: number;
  /** How long `close()` waits for a running transaction before closing anyway. @default 10000 */
  closeTimeoutMs?: number;
  /** Parent logger; the adapter logs with `component: "store"`. @default a silent logger */
  logger?: Logger;
  /** Abandons opening (the data-dir lock is released). */
  signal?: AbortSignal;
}

type CompiledPgliteDbOptions = Required<Omit<PgliteDbOptions, "logger" | "signal" | "dataDir">> & {
  dataDir: string | undefined;
  logger: Logger | undefined;
};

function compile(options: PgliteDbOptions): CompiledPgliteDbOptions {
  return {
    dataDir: options.dataDir === undefined ? undefined : resolve(options.dataDir),
    defaultTimeoutMs: options.defaultTimeoutMs ?? 30_000,
    readyTimeoutMs: options.readyTimeoutMs ?? 2000,
    closeTimeoutMs: options.closeTimeoutMs ?? 10_000,
    logger: options.logger,
  };
}

/** Open PGlite on `options.dataDir` (locked) or in memory. */
export async function openPgliteDb(options: PgliteDbOptions = {}): Promise<Db> {
  const o = compile(options);
  const log = storeLogger(o.logger, "pglite");
  const opening = Deadline.of({ signal: options.signal, timeoutMs: Infinity }, Infinity, "open PGlite");
  opening.check();
  let lock: DataDirLock | undefined;
  if (o.dataDir !== undefined) {
    lock = await acquireDataDirLock(o.dataDir);
    await mkdir(o.dataDir, { recursive: true });
  }
  let pg: PGlite | undefined;
  try {
    pg = new PGlite({ dataDir: o.dataDir, parsers: pgliteParsers() });
    // Starting cannot be interrupted; if the caller gives up meanwhile, close what was started.
    const started = pg.waitReady;
    await opening.race(started).catch(async (err: unknown) => {
      await started.then(
        () => pg?.close(),
        () => {},
      );
      throw err;
    });
  } catch (err) {
    await lock?.release();
    if (err instanceof StoreError) throw err;
    throw new StoreError(
      ErrorCode.Internal,
      `could not start PGlite${o.dataDir === undefined ? " (in memory)" : ` on ${o.dataDir}`}: ${String(err)}`,
      { cause: err, details: { data_dir: o.dataDir } },
    );
  }
  log.info({ data_dir: o.dataDir ?? "memory" }, "PGlite started");
  return new PgliteDb(pg, o, log, lock);
}

/** Marks the async context of a running `tx` callback (to reject `db.query` there instead of deadlocking). */
interface TxScope {
  active: boolean;
}

class PgliteDb implements Db {
  readonly kind = "pglite" as const;
  readonly #pg: PGlite;
  readonly #o: CompiledPgliteDbOptions;
  readonly #log: Logger;
  readonly #lock: DataDirLock | undefined;
  readonly #mutex = new Mutex();
  readonly #txScope = new AsyncLocalStorage<TxScope>();
  #closing: Promise<void> | undefined;

  constructor(pg: PGlite, o: CompiledPgliteDbOptions, log: Logger, lock: DataDirLock | undefined) {
    this.#pg = pg;
    this.#o = o;
    this.#log = log;
    this.#lock = lock;
  }

  async query<R = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    opts?: CallOptions,
  ): Promise<QueryResult<R>> {
    const d = this.#deadline(opts, "query");
    return this.#mutex.run(d, () => runQuery<R>(this.#pg, sql, params, d));
  }

  async exec(sql: string, opts?: CallOptions): Promise<void> {
    const d = this.#deadline(opts, "exec");
    await this.#mutex.run(d, () => runExec(this.#pg, sql, d));
  }

  async tx<T>(fn: (q: Queryable) => Promise<T>, opts: TxOptions = {}): Promise<T> {
    const d = this.#deadline(opts, "transaction");
    return this.#mutex.run(d, async () => {
      d.check();
      const isolation: Isolation = opts.isolation ?? "read committed";
      const scope: TxScope = { active: true };
      let handle: PgliteTxQueryable | undefined;
      try {
        return await this.#pg.transaction(async (tx) => {
          if (isolation !== "read committed") {
            await runExec(tx, `SET TRANSACTION ISOLATION LEVEL ${isolation.toUpperCase()}`, d);
          }
          handle = new PgliteTxQueryable(tx, d);
          const result = await this.#txScope.run(scope, () => fn(handle as PgliteTxQueryable));
          handle.end();
          // The deadline bounds the whole transaction: late work is not committed.
          d.check();
          return result;
        });
      } catch (err) {
        // Errors from the callback pass through unchanged; PGlite's own (BEGIN/COMMIT) become StoreErrors.
        if (err instanceof StoreError || !isPgliteDatabaseError(err)) throw err;
        throw toStoreError(err, "commit");
      } finally {
        scope.active = false;
        handle?.end();
      }
    });
  }

  async listen(channel: string, onMessage: (payload: string) => void, opts: ListenOptions = {}): Promise<Unlisten> {
    assertChannelName(channel);
    const d = this.#deadline({ signal: opts.signal }, `LISTEN ${channel}`);
    const callback = (payload: string): void => {
      try {
        onMessage(payload);
      } catch (err) {
        this.#log.error({ err, channel }, "notification handler threw");
      }
    };
    const unlisten = await this.#mutex.run(d, async () => {
      d.check();
      try {
        return await this.#pg.listen(channel, callback);
      } catch (err) {
        throw toStoreError(err, `LISTEN ${channel}`);
      }
    });
    let removed = false;
    return async () => {
      if (removed || this.#closing !== undefined) return;
      removed = true;
      const u = Deadline.of(undefined, this.#o.defaultTimeoutMs, `UNLISTEN ${channel}`);
      await this.#mutex
        .run(u, () => unlisten())
        .catch((err: unknown) => {
          this.#log.warn({ err, channel }, "UNLISTEN failed");
        });
    };
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
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // New calls are refused from now on; wait (bounded) for the one holding the connection.
    const d = Deadline.of(undefined, this.#o.closeTimeoutMs, "close");
    const release = await this.#mutex.acquire(d).catch((err: unknown) => {
      this.#log.warn({ err }, "closing PGlite while a transaction is still running");
      return undefined;
    });
    try {
      if (this.#o.dataDir !== undefined) {
        try {
          await this.#pg.exec("CHECKPOINT");
        } catch (err) {
          this.#log.warn({ err }, "CHECKPOINT before close failed");
        }
      }
      try {
        await this.#pg.close();
      } catch (err) {
        this.#log.warn({ err }, "closing PGlite failed");
      }
      this.#log.info({ data_dir: this.#o.dataDir ?? "memory" }, "PGlite closed");
    } finally {
      await this.#lock?.release();
      release?.();
    }
  }

  #deadline(opts: CallOptions | undefined, what: string): Deadline {
    if (this.#closing !== undefined) throw new StoreClosedError();
    if (this.#txScope.getStore()?.active === true) {
      throw new StoreQueryError(
        `${what} called on the Db inside its own transaction callback; use the transaction handle instead ` +
          "(PGlite has one connection, so this would wait for itself)",
      );
    }
    return Deadline.of(opts, this.#o.defaultTimeoutMs, what);
  }
}

/** The handle given to `tx` callbacks. */
class PgliteTxQueryable implements Queryable {
  readonly #tx: Transaction;
  readonly #d: Deadline;
  #ended = false;

  constructor(tx: Transaction, d: Deadline) {
    this.#tx = tx;
    this.#d = d;
  }

  end(): void {
    this.#ended = true;
  }

  query<R = Record<string, unknown>>(sql: string, params?: unknown[], opts?: CallOptions): Promise<QueryResult<R>> {
    this.#assertActive();
    return runQuery<R>(this.#tx, sql, params, this.#d.within(opts, "query"));
  }

  async exec(sql: string, opts?: CallOptions): Promise<void> {
    this.#assertActive();
    await runExec(this.#tx, sql, this.#d.within(opts, "exec"));
  }

  #assertActive(): void {
    if (this.#ended) throw new StoreQueryError("transaction handle used after its transaction ended");
  }
}

async function runQuery<R>(
  target: PGlite | Transaction,
  sql: string,
  params: unknown[] | undefined,
  d: Deadline,
): Promise<QueryResult<R>> {
  d.check();
  try {
    const res = await target.query<R>(sql, params ?? []);
    return { rows: res.rows, rowCount: res.rowCount ?? res.affectedRows ?? 0 };
  } catch (err) {
    throw toStoreError(err, "query");
  }
}

async function runExec(target: PGlite | Transaction, sql: string, d: Deadline): Promise<void> {
  d.check();
  try {
    await target.exec(sql);
  } catch (err) {
    throw toStoreError(err, "exec");
  }
}

/** PGlite's errors carry PostgreSQL fields (`severity`, SQLSTATE `code`). */
function isPgliteDatabaseError(err: unknown): boolean {
  return err instanceof Error && typeof (err as { severity?: unknown }).severity === "string";
}
