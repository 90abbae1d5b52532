/**
 * The in-process bus of the embedded default (`stackl dev`). Same semantics as `NatsBus`: work-queue retention (a
 * message stays until acked or terminated, whether or not a consumer exists yet), one shared position per queue,
 * publish deduplication inside a window, redelivery after the ack wait, delayed nak, term, max deliver, delivery
 * count, `working()`; doorbells with NATS wildcard rules. Nothing survives the process, which is fine: PostgreSQL
 * (PGlite) is the truth and the sweeper re-enqueues. No timer outlives `close()`.
 */
import type { Logger } from "pino";
import { ErrorCode, StacklError } from "../errors.js";
import {
  type BellHandler,
  type Bus,
  type ConsumeWorkOptions,
  DEFAULT_DUPLICATE_WINDOW_MS,
  type PublishOptions,
  type PublishOutcome,
  type PublishResult,
  type Unsubscribe,
  type WorkConsumer,
  type WorkHandler,
  type WorkMessage,
  type WorkPublish,
} from "./bus.js";
import { toBusError } from "./bus-error.js";
import { queueToken } from "./queue-name.js";
import { subjectMatcher, validateSubject } from "./subject.js";
import { validateWorkMessage } from "./work-message.js";
import {
  DEFAULT_ACK_WAIT_MS,
  DEFAULT_MAX_DELIVER,
  type DeliverySource,
  normalizeConsumeOptions,
  type RawDelivery,
  type SourceHooks,
  startWorkPool,
} from "./work-pool.js";

export interface MemoryBusOptions {
  logger: Logger;
  /**
   * How long a `dedupId` is remembered.
   * @default DEFAULT_DUPLICATE_WINDOW_MS (2 min)
   */
  duplicateWindowMs?: number;
}

type EntryState = "ready" | "delayed" | "inflight";

interface Entry {
  readonly seq: number;
  readonly id: string;
  readonly dedupId: string;
  readonly data: Uint8Array;
  deliveries: number;
  /** Identifies the current delivery; settlement by an older one is ignored (except ack/term, as on JetStream). */
  token: number;
  state: EntryState;
  timer: NodeJS.Timeout | undefined;
}

type Waiter = (raw: RawDelivery | undefined) => void;

function closedError(): StacklError {
  return new StacklError(ErrorCode.Unavailable, "bus is closed");
}

/** One queue: its messages and the consumers waiting for them (all consumers of a queue share it). */
class MemoryQueue {
  readonly name: string;
  ackWaitMs = DEFAULT_ACK_WAIT_MS;
  maxDeliver = DEFAULT_MAX_DELIVER;
  readonly #entries = new Map<number, Entry>();
  /** Ready entries, oldest first. */
  #ready: Entry[] = [];
  readonly #waiters: Waiter[] = [];
  readonly #log: Logger;
  #closed = false;

  constructor(name: string, log: Logger) {
    this.name = name;
    this.#log = log;
  }

  /** Messages held (ready, delayed or in flight). */
  get size(): number {
    return this.#entries.size;
  }

  add(seq: number, msg: WorkMessage): void {
    const e: Entry = {
      seq,
      id: msg.id,
      dedupId: msg.dedupId,
      data: msg.data.slice(),
      deliveries: 0,
      token: 0,
      state: "ready",
      timer: undefined,
    };
    this.#entries.set(seq, e);
    this.#ready.push(e);
    this.#dispatch();
  }

  /** Waits for the next delivery; `cancel` resolves the wait with `undefined`. */
  wait(): { promise: Promise<RawDelivery | undefined>; cancel: () => void } {
    let waiter: Waiter | undefined;
    const promise = new Promise<RawDelivery | undefined>((resolve) => {
      waiter = resolve;
    });
    const w = waiter!;
    if (this.#closed) {
      w(undefined);
      return { promise, cancel: () => {} };
    }
    this.#waiters.push(w);
    this.#dispatch();
    return {
      promise,
      cancel: () => {
        const i = this.#waiters.indexOf(w);
        if (i !== -1) {
          this.#waiters.splice(i, 1);
          w(undefined);
        }
      },
    };
  }

  close(): void {
    this.#closed = true;
    for (const e of this.#entries.values()) clearTimeout(e.timer);
    this.#entries.clear();
    this.#ready = [];
    for (const w of this.#waiters.splice(0)) w(undefined);
  }

  #dispatch(): void {
    while (this.#ready.length > 0 && this.#waiters.length > 0) {
      const e = this.#ready.shift()!;
      const w = this.#waiters.shift()!;
      w(this.#deliver(e));
    }
  }

  #makeReady(e: Entry): void {
    e.state = "ready";
    e.timer = undefined;
    // Keep stream order: a redelivery goes before newer messages.
    let i = this.#ready.length;
    while (i > 0 && this.#ready[i - 1]!.seq > e.seq) i--;
    this.#ready.splice(i, 0, e);
    this.#dispatch();
  }

  #remove(e: Entry): void {
    clearTimeout(e.timer);
    e.timer = undefined;
    if (this.#entries.delete(e.seq) && e.state === "ready") {
      const i = this.#ready.indexOf(e);
      if (i !== -1) this.#ready.splice(i, 1);
    }
  }

  #armAckWait(e: Entry): void {
    clearTimeout(e.timer);
    const token = e.token;
    e.timer = setTimeout(() => this.#ackWaitExpired(e, token), this.ackWaitMs);
  }

  #ackWaitExpired(e: Entry, token: number): void {
    if (e.token !== token || e.state !== "inflight" || !this.#entries.has(e.seq)) return;
    if (e.deliveries >= this.maxDeliver) {
      // JetStream stops delivering it (and keeps it, unreachable); nothing would ever read it here either.
      this.#log.warn({ queue: this.name, msg_id: e.dedupId, delivery: e.deliveries }, "max_deliver reached");
      this.#remove(e);
      return;
    }
    this.#makeReady(e);
  }

  #deliver(e: Entry): RawDelivery {
    e.deliveries++;
    e.token++;
    e.state = "inflight";
    const token = e.token;
    this.#armAckWait(e);
    const current = (): boolean => e.token === token && e.state === "inflight" && this.#entries.has(e.seq);
    return {
      id: e.id,
      dedupId: e.dedupId,
      data: e.data,
      deliveryCount: e.deliveries,
      working: () => {
        if (current()) this.#armAckWait(e);
      },
      ack: () => {
        if (this.#closed) return Promise.reject(closedError());
        // Like JetStream (nats-server#4786): an ack from an earlier delivery still removes the message.
        this.#remove(e);
        return Promise.resolve();
      },
      nak: (delayMs?: number) => {
        if (!current()) return;
        clearTimeout(e.timer);
        if (e.deliveries >= this.maxDeliver) {
          this.#remove(e);
          return;
        }
        if (delayMs !== undefined && delayMs > 0) {
          e.state = "delayed";
          e.timer = setTimeout(() => {
            if (e.token === token && e.state === "delayed" && this.#entries.has(e.seq)) this.#makeReady(e);
          }, delayMs);
        } else {
          this.#makeReady(e);
        }
      },
      term: () => {
        this.#remove(e);
      },
    };
  }
}

class MemorySource implements DeliverySource {
  readonly #queue: MemoryQueue;
  #stopped = false;
  #cancel: (() => void) | undefined;

  constructor(queue: MemoryQueue, hooks: SourceHooks) {
    this.#queue = queue;
    hooks.onActive(true);
  }

  async next(): Promise<RawDelivery | undefined> {
    if (this.#stopped) return undefined;
    const { promise, cancel } = this.#queue.wait();
    this.#cancel = cancel;
    try {
      return await promise;
    } finally {
      this.#cancel = undefined;
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#cancel?.();
  }
}

interface BellSub {
  match: (subject: string) => boolean;
  handler: BellHandler;
}

export class MemoryBus implements Bus {
  readonly kind = "memory" as const;
  readonly #log: Logger;
  readonly #duplicateWindowMs: number;
  readonly #queues = new Map<string, MemoryQueue>();
  /** dedupId → expiry (ms); insertion order is expiry order since the window is fixed. */
  readonly #seen = new Map<string, number>();
  readonly #consumers = new Set<WorkConsumer>();
  readonly #subs = new Set<BellSub>();
  #seq = 0;
  #closed = false;

  constructor(opts: MemoryBusOptions) {
    this.#log = opts.logger.child({ component: "bus", bus: "memory" });
    this.#duplicateWindowMs = opts.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS;
  }

  #queue(name: string): MemoryQueue {
    queueToken(name); // same validation as NATS
    let q = this.#queues.get(name);
    if (!q) {
      q = new MemoryQueue(name, this.#log);
      this.#queues.set(name, q);
    }
    return q;
  }

  /** Messages held for `queue` (ready, delayed or in flight); for tests and diagnostics. */
  pending(queue: string): number {
    return this.#queues.get(queue)?.size ?? 0;
  }

  async publishWork(queue: string, msg: WorkMessage, opts?: PublishOptions): Promise<PublishResult> {
    opts?.signal?.throwIfAborted();
    return this.#publish(queue, msg);
  }

  #publish(queue: string, msg: WorkMessage): PublishResult {
    if (this.#closed) throw closedError();
    validateWorkMessage(msg);
    const q = this.#queue(queue);
    const now = Date.now();
    for (const [key, expires] of this.#seen) {
      if (expires > now) break;
      this.#seen.delete(key);
    }
    if (this.#seen.has(msg.dedupId)) return { duplicate: true };
    this.#seen.set(msg.dedupId, now + this.#duplicateWindowMs);
    q.add(++this.#seq, msg);
    return { duplicate: false };
  }

  async publishWorkBatch(items: readonly WorkPublish[], opts?: PublishOptions): Promise<PublishOutcome[]> {
    return items.map((item): PublishOutcome => {
      try {
        opts?.signal?.throwIfAborted();
        return { ok: true, duplicate: this.#publish(item.queue, item).duplicate };
      } catch (err) {
        return { ok: false, error: toBusError(err, `publish to ${item.queue}`) };
      }
    });
  }

  async consumeWork(queue: string, opts: ConsumeWorkOptions, handler: WorkHandler): Promise<WorkConsumer> {
    if (this.#closed) throw closedError();
    const options = normalizeConsumeOptions(opts);
    const q = this.#queue(queue);
    q.ackWaitMs = options.ackWaitMs;
    q.maxDeliver = options.maxDeliver;
    const consumer = startWorkPool({
      queue,
      options,
      handler,
      logger: this.#log,
      source: (hooks) => new MemorySource(q, hooks),
      onStopped: () => this.#consumers.delete(consumer),
    });
    this.#consumers.add(consumer);
    return consumer;
  }

  publish(subject: string, data: Uint8Array): void {
    if (this.#closed) throw closedError();
    validateSubject(subject, false);
    for (const sub of this.#subs) {
      if (!sub.match(subject)) continue;
      const msg = { subject, data: data.slice() };
      queueMicrotask(() => {
        if (this.#closed || !this.#subs.has(sub)) return;
        try {
          const r = sub.handler(msg);
          if (r instanceof Promise) r.catch((err: unknown) => this.#bellError(subject, err));
        } catch (err) {
          this.#bellError(subject, err);
        }
      });
    }
  }

  #bellError(subject: string, err: unknown): void {
    this.#log.error({ subject, err }, "doorbell handler failed");
  }

  subscribe(subject: string, handler: BellHandler): Unsubscribe {
    if (this.#closed) throw closedError();
    validateSubject(subject, true);
    const sub: BellSub = { match: subjectMatcher(subject), handler };
    this.#subs.add(sub);
    return () => {
      this.#subs.delete(sub);
    };
  }

  async flush(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.#closed) throw closedError();
  }

  async ready(): Promise<boolean> {
    return !this.#closed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#consumers].map((c) => c.stop({ graceMs: 0 })));
    for (const q of this.#queues.values()) q.close();
    this.#queues.clear();
    this.#seen.clear();
    this.#subs.clear();
  }
}
