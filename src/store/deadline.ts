/**
 * The time budget of one store call: an absolute expiry time (from `timeoutMs`) plus the caller's `AbortSignal`s.
 * Every wait in the store (pool checkout, mutex, statement) is raced against it, so no call waits without bound.
 */
import { StoreAbortedError, type StoreError, StoreTimeoutError } from "./errors.js";

/** Per-call options accepted by every async store method. */
export interface CallOptions {
  /** Cancels the call; a running statement is cancelled on the server (PostgreSQL). */
  signal?: AbortSignal;
  /**
   * Budget for the whole call in milliseconds, including waiting for a connection. `Infinity` means no deadline
   * (only for maintenance such as migrations).
   * @default the adapter's `defaultTimeoutMs` (30 000)
   */
  timeoutMs?: number;
}

export class Deadline {
  /** Epoch milliseconds at which the call expires (`Infinity` = never). */
  readonly expiresAt: number;
  readonly #signals: readonly AbortSignal[];
  readonly #what: string;

  private constructor(expiresAt: number, signals: readonly AbortSignal[], what: string) {
    this.expiresAt = expiresAt;
    this.#signals = signals;
    this.#what = what;
  }

  /** A deadline `opts.timeoutMs` (or `defaultTimeoutMs`) from now, also ended by `opts.signal`. */
  static of(opts: CallOptions | undefined, defaultTimeoutMs: number, what: string): Deadline {
    const timeoutMs = opts?.timeoutMs ?? defaultTimeoutMs;
    if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${timeoutMs}`);
    return new Deadline(Date.now() + timeoutMs, opts?.signal === undefined ? [] : [opts.signal], what);
  }

  /** The narrower of this deadline and `opts` (a statement inside a transaction). */
  within(opts: CallOptions | undefined, what: string): Deadline {
    const own = opts?.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    const signals = opts?.signal === undefined ? this.#signals : [...this.#signals, opts.signal];
    return new Deadline(Math.min(this.expiresAt, own), signals, what);
  }

  /** Milliseconds left (0 when expired, `Infinity` when unbounded). */
  remainingMs(): number {
    return Math.max(0, this.expiresAt - Date.now());
  }

  /** True once the time is up or a signal fired. */
  get done(): boolean {
    return this.#aborted() !== undefined || Date.now() >= this.expiresAt;
  }

  /** Throw the deadline's error if it is already done. */
  check(): void {
    if (this.done) throw this.error();
  }

  /** The error describing why this deadline ended (abort wins over timeout). */
  error(): StoreError {
    const aborted = this.#aborted();
    if (aborted !== undefined) {
      return new StoreAbortedError(`${this.#what} aborted`, { cause: aborted.reason });
    }
    return new StoreTimeoutError(`${this.#what} exceeded its deadline`);
  }

  /**
   * Resolve/reject like `work`, unless the deadline ends first: then call `onExpire` (e.g. cancel the statement)
   * and reject with `error()`. `work` keeps running; the caller decides what to do with it.
   */
  race<T>(work: Promise<T>, onExpire?: () => void): Promise<T> {
    if (this.done) {
      onExpire?.();
      work.catch(() => {});
      return Promise.reject(this.error());
    }
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        for (const s of this.#signals) s.removeEventListener("abort", expire);
      };
      const expire = (): void => {
        cleanup();
        work.catch(() => {});
        onExpire?.();
        reject(this.error());
      };
      const remaining = this.remainingMs();
      // setTimeout takes at most 2^31-1 ms; longer (or infinite) deadlines simply never fire.
      if (remaining < 2 ** 31 - 1) timer = setTimeout(expire, remaining);
      for (const s of this.#signals) s.addEventListener("abort", expire, { once: true });
      work.then(
        (v) => {
          cleanup();
          resolve(v);
        },
        (e: unknown) => {
          cleanup();
          reject(e);
        },
      );
    });
  }

  #aborted(): AbortSignal | undefined {
    return this.#signals.find((s) => s.aborted);
  }
}
