/**
 * The consumer side shared by both adapters: a concurrency-limited pool of handlers over a `DeliverySource` (the
 * adapter-specific stream of raw deliveries), with automatic `working()`, the nak/term policy for handler failures,
 * the max-deliver hook, and graceful stop. Keeping this in one place is what gives both adapters the same semantics.
 */
import type { Logger } from "pino";
import { ErrorCode, StacklError } from "../errors.js";
import { backoffDelay } from "./backoff.js";
import type {
  ConsumeWorkOptions,
  ExhaustedOutcome,
  WorkConsumer,
  WorkConsumerState,
  WorkDelivery,
  WorkHandler,
} from "./bus.js";
import { Semaphore } from "./semaphore.js";

/** Default redelivery timeout of an unacknowledged delivery (DESIGN section 6). */
export const DEFAULT_ACK_WAIT_MS = 30_000;
/** Default deliveries per message, the first included (DESIGN section 6). */
export const DEFAULT_MAX_DELIVER = 5;
/** Longest period between automatic `working()` calls while a handler runs (DESIGN section 6). */
export const WORKING_INTERVAL_MS = 10_000;
/** Automatic `working()` runs at least this many times per ack wait. */
export const WORKING_PER_ACK_WAIT = 3;
/** Shortest ack wait accepted (JetStream accepts less, but timers below this are noise). */
export const MIN_ACK_WAIT_MS = 100;
/** Retry delay after a handler failure: base, cap and proportional jitter of the exponential backoff. */
export const RETRY_DELAY_BASE_MS = 1_000;
export const RETRY_DELAY_CAP_MS = 30_000;
export const RETRY_DELAY_JITTER = 0.2;

/** A delivery as an adapter hands it over; settlement calls go straight to the bus. */
export interface RawDelivery {
  id: string;
  dedupId: string;
  data: Uint8Array;
  deliveryCount: number;
  working(): void;
  /** Confirmed acknowledgement; rejects if the bus did not confirm. */
  ack(): Promise<void>;
  nak(delayMs?: number): void;
  term(reason: string): void;
}

/** The adapter-specific producer of deliveries. `next()` is never called concurrently. */
export interface DeliverySource {
  /**
   * The next delivery, pulled only when the pool has a free slot. After `stop()` it returns whatever was already
   * received (the pool hands those back) and then `undefined`.
   */
  next(): Promise<RawDelivery | undefined>;
  stop(): void;
}

/** Hooks a source uses to report whether it is attached to the bus right now. */
export interface SourceHooks {
  onActive(active: boolean): void;
}

/** `ConsumeWorkOptions` with defaults applied and checked. */
export interface NormalizedConsumeOptions {
  concurrency: number;
  prefetch: number;
  signal: AbortSignal;
  ackWaitMs: number;
  maxDeliver: number;
  autoWorking: boolean;
  workingIntervalMs: number;
  retryDelayMs: (deliveryCount: number) => number;
  onExhausted: ConsumeWorkOptions["onExhausted"];
}

export function defaultRetryDelayMs(deliveryCount: number): number {
  return backoffDelay(Math.max(0, deliveryCount - 1), RETRY_DELAY_BASE_MS, RETRY_DELAY_CAP_MS, RETRY_DELAY_JITTER);
}

export function normalizeConsumeOptions(opts: ConsumeWorkOptions): NormalizedConsumeOptions {
  const ackWaitMs = opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
  const maxDeliver = opts.maxDeliver ?? DEFAULT_MAX_DELIVER;
  const violations = [];
  if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) {
    violations.push({ field: "concurrency", message: "must be an integer >= 1" });
  }
  if (!Number.isFinite(ackWaitMs) || ackWaitMs < MIN_ACK_WAIT_MS) {
    violations.push({ field: "ackWaitMs", message: `must be >= ${MIN_ACK_WAIT_MS}` });
  }
  if (opts.prefetch !== undefined && (!Number.isInteger(opts.prefetch) || opts.prefetch < 1)) {
    violations.push({ field: "prefetch", message: "must be an integer >= 1" });
  }
  if (!Number.isInteger(maxDeliver) || maxDeliver < 1) {
    violations.push({ field: "maxDeliver", message: "must be an integer >= 1" });
  }
  if (violations.length > 0) throw StacklError.invalid(violations);
  return {
    concurrency: opts.concurrency,
    prefetch: opts.prefetch ?? opts.concurrency,
    signal: opts.signal,
    ackWaitMs,
    maxDeliver,
    autoWorking: opts.autoWorking ?? true,
    workingIntervalMs: Math.min(WORKING_INTERVAL_MS, Math.floor(ackWaitMs / WORKING_PER_ACK_WAIT)),
    retryDelayMs: opts.retryDelayMs ?? defaultRetryDelayMs,
    onExhausted: opts.onExhausted,
  };
}

/** Terminal failures are non-retryable `StacklError`s (decided by type, never by message text). */
function isTerminal(err: unknown): err is StacklError {
  return err instanceof StacklError && !err.retryable;
}

type Settlement = "ack" | "nak" | "term" | "exhaust" | "abandoned";

class PoolDelivery implements WorkDelivery {
  readonly queue: string;
  readonly id: string;
  readonly dedupId: string;
  readonly data: Uint8Array;
  readonly deliveryCount: number;
  readonly lastDelivery: boolean;
  readonly #abort = new AbortController();
  readonly #raw: RawDelivery;
  #ticker: NodeJS.Timeout | undefined;
  settled: Settlement | undefined;

  constructor(queue: string, raw: RawDelivery, maxDeliver: number) {
    this.queue = queue;
    this.id = raw.id;
    this.dedupId = raw.dedupId;
    this.data = raw.data;
    this.deliveryCount = raw.deliveryCount;
    this.lastDelivery = raw.deliveryCount >= maxDeliver;
    this.#raw = raw;
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  working(): void {
    if (this.settled === undefined) this.#raw.working();
  }

  async ack(): Promise<void> {
    if (this.settled !== undefined) return;
    this.settled = "ack";
    try {
      await this.#raw.ack();
    } catch (err) {
      throw err instanceof StacklError
        ? err
        : new StacklError(ErrorCode.Unavailable, `ack of ${this.dedupId} not confirmed: ${String(err)}`, {
            cause: err,
          });
    }
  }

  nak(delayMs?: number): void {
    if (this.settled !== undefined) return;
    if (this.lastDelivery) {
      // A nak on the last delivery would leave the message stuck on JetStream; the pool exhausts it instead.
      this.settled = "exhaust";
      return;
    }
    this.settled = "nak";
    this.#raw.nak(delayMs);
  }

  term(reason: string): void {
    if (this.settled !== undefined) return;
    this.settled = "term";
    this.#raw.term(reason);
  }

  /** Pool-side settlement, bypassing the "first call wins" guard for the internal outcomes. */
  settleNak(delayMs: number): void {
    this.settled = "nak";
    this.#raw.nak(delayMs);
  }

  settleTerm(reason: string): void {
    this.settled = "term";
    this.#raw.term(reason);
  }

  /** Calls `working()` every `intervalMs` until `stopTicker()` (or `abandon()`). */
  startTicker(intervalMs: number): void {
    this.#ticker = setInterval(() => this.working(), intervalMs);
  }

  stopTicker(): void {
    if (this.#ticker) clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  /** Stop gave up on this delivery: abort the handler and hand the message back at once. */
  abandon(reason: unknown): void {
    this.stopTicker();
    const was = this.settled;
    this.settled = "abandoned";
    this.#abort.abort(reason);
    if (was === undefined) this.#raw.nak();
  }
}

export interface WorkPoolParams {
  queue: string;
  options: NormalizedConsumeOptions;
  handler: WorkHandler;
  logger: Logger;
  /** Builds the source; the pool starts pulling from it at once. */
  source: (hooks: SourceHooks) => DeliverySource;
  /** Called once the pool has stopped (for the adapter's bookkeeping). */
  onStopped?: () => void;
}

/** Starts a pool. The returned consumer is already pulling. */
export function startWorkPool(params: WorkPoolParams): WorkConsumer {
  return new WorkPool(params);
}

class WorkPool implements WorkConsumer {
  readonly queue: string;
  readonly #opts: NormalizedConsumeOptions;
  readonly #handler: WorkHandler;
  readonly #log: Logger;
  readonly #source: DeliverySource;
  readonly #sem: Semaphore;
  readonly #running = new Map<PoolDelivery, Promise<void>>();
  readonly #onStopped: (() => void) | undefined;
  readonly #loop: Promise<void>;
  #state: WorkConsumerState = "starting";
  #stopping: Promise<void> | undefined;
  readonly #onAbort = (): void => {
    void this.stop({ graceMs: 0 });
  };

  constructor(p: WorkPoolParams) {
    this.queue = p.queue;
    this.#opts = p.options;
    this.#handler = p.handler;
    this.#log = p.logger;
    this.#onStopped = p.onStopped;
    this.#sem = new Semaphore(p.options.concurrency);
    this.#source = p.source({
      onActive: (active) => {
        if (this.#state === "starting" || this.#state === "running") this.#transition(active ? "running" : "starting");
      },
    });
    this.#loop = this.#pull();
    if (p.options.signal.aborted) this.#onAbort();
    else p.options.signal.addEventListener("abort", this.#onAbort, { once: true });
  }

  get state(): WorkConsumerState {
    return this.#state;
  }

  get inFlight(): number {
    return this.#running.size;
  }

  #transition(next: WorkConsumerState): void {
    if (next === this.#state) return;
    this.#log.info({ queue: this.queue, from: this.#state, to: next }, "work consumer state");
    this.#state = next;
  }

  async #pull(): Promise<void> {
    try {
      for (;;) {
        if (!(await this.#sem.acquire())) break;
        const raw = await this.#source.next();
        if (raw === undefined) {
          this.#sem.release();
          break;
        }
        if (this.#stopping) {
          raw.nak();
          this.#sem.release();
          continue;
        }
        this.#launch(raw);
      }
      // Hand back what the source had already received when we stopped.
      for (;;) {
        const raw = await this.#source.next();
        if (raw === undefined) break;
        raw.nak();
      }
      if (!this.#stopping) {
        this.#log.error({ queue: this.queue }, "work source ended unexpectedly");
        this.#transition("failed");
      }
    } catch (err) {
      this.#log.error({ queue: this.queue, err }, "work consumer loop failed");
      this.#transition("failed");
    }
  }

  #launch(raw: RawDelivery): void {
    const d = new PoolDelivery(this.queue, raw, this.#opts.maxDeliver);
    const run = this.#run(d).finally(() => {
      this.#running.delete(d);
      this.#sem.release();
    });
    this.#running.set(d, run);
  }

  async #run(d: PoolDelivery): Promise<void> {
    if (this.#opts.autoWorking && this.#opts.workingIntervalMs > 0) d.startTicker(this.#opts.workingIntervalMs);
    let threw = false;
    let error: unknown;
    try {
      await this.#handler(d);
    } catch (err) {
      threw = true;
      error = err;
    } finally {
      d.stopTicker();
    }
    const ctx = { queue: this.queue, msg_id: d.dedupId, delivery: d.deliveryCount };
    try {
      switch (d.settled) {
        case "ack":
        case "nak":
        case "term":
        case "abandoned":
          if (threw) this.#log.warn({ ...ctx, err: error }, "work handler threw after settling its delivery");
          return;
        case "exhaust":
          await this.#exhaust(d, "nak");
          return;
        case undefined:
          break;
        default: {
          const never: never = d.settled;
          throw new Error(`unknown settlement ${String(never)}`);
        }
      }
      if (threw) {
        if (isTerminal(error)) {
          this.#log.warn({ ...ctx, err: error }, "work handler failed terminally; terminating the message");
          d.settleTerm(error.message);
        } else if (d.lastDelivery) {
          this.#log.warn({ ...ctx, err: error }, "work handler failed on the last delivery");
          await this.#exhaust(d, "error", error);
        } else {
          const delayMs = this.#opts.retryDelayMs(d.deliveryCount);
          this.#log.warn({ ...ctx, err: error, delay_ms: delayMs }, "work handler failed; redelivering later");
          d.settleNak(delayMs);
        }
        return;
      }
      if (d.lastDelivery) {
        await this.#exhaust(d, "unsettled");
        return;
      }
      this.#log.warn(ctx, "work handler returned without ack/nak/term; redelivery after ack wait");
    } catch (err) {
      this.#log.error({ ...ctx, err }, "settling a work delivery failed");
    }
  }

  async #exhaust(d: PoolDelivery, outcome: ExhaustedOutcome, error?: unknown): Promise<void> {
    const ctx = { queue: this.queue, msg_id: d.dedupId, delivery: d.deliveryCount, outcome };
    this.#log.warn(ctx, "max_deliver exhausted");
    try {
      await this.#opts.onExhausted?.(error === undefined ? { delivery: d, outcome } : { delivery: d, outcome, error });
    } catch (err) {
      this.#log.error({ ...ctx, err }, "onExhausted hook failed");
    } finally {
      d.settleTerm(`max_deliver exhausted (${outcome})`);
    }
  }

  stop(opts: { graceMs: number }): Promise<void> {
    this.#stopping ??= this.#stop(Math.max(0, opts.graceMs));
    return this.#stopping;
  }

  async #stop(graceMs: number): Promise<void> {
    this.#opts.signal.removeEventListener("abort", this.#onAbort);
    this.#transition("draining");
    this.#source.stop();
    this.#sem.close();
    await this.#loop;
    if (this.#running.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([Promise.allSettled(this.#running.values()), graceOver]);
      clearTimeout(timer);
    }
    if (this.#running.size > 0) {
      this.#log.warn({ queue: this.queue, in_flight: this.#running.size }, "stop grace expired; handing work back");
      const reason = new StacklError(ErrorCode.Cancelled, "work consumer stopped");
      for (const d of this.#running.keys()) d.abandon(reason);
    }
    this.#transition("stopped");
    this.#onStopped?.();
  }
}
