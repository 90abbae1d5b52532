/**
 * The bus: notifications of work, never the truth (DESIGN decision 1). PostgreSQL holds every task and job; the bus
 * only tells a pool "there is work" (work queues, at-least-once, deduplicated on publish) and rings doorbells across
 * replicas (core subjects, fire-and-forget, not persisted). Anything sent here may be lost or duplicated; callers
 * fence with epochs and a sweeper re-enqueues from PostgreSQL.
 *
 * Two adapters implement it with the same semantics: `NatsBus` (JetStream) and `MemoryBus` (in process, for the
 * embedded default). The same worker code runs on both.
 */
import type { StacklError } from "../errors.js";

/**
 * How long a `dedupId` is remembered by both adapters (JetStream `duplicate_window`; also its default). It covers an
 * outbox relay retrying a publish whose acknowledgement was lost; a re-enqueue by the sweeper uses a new epoch, so a
 * new `dedupId`, and is never swallowed.
 */
export const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;

/** Which adapter is behind a `Bus`. */
export type BusKind = "nats" | "memory";

/** One work notification. */
export interface WorkMessage {
  /** The work item's id (e.g. a task id). Delivered unchanged. */
  id: string;
  /**
   * Publish-side deduplication key, `<id>:<epoch>` (NATS `Nats-Msg-Id`). A second publish with the same key within
   * the bus's duplicate window is dropped and reported as `duplicate: true`. Redelivery is not deduplication.
   */
  dedupId: string;
  /** Opaque payload. */
  data: Uint8Array;
}

/** A work message addressed to a queue, for `publishWorkBatch`. */
export interface WorkPublish extends WorkMessage {
  /** The pool's queue name (any non-empty string up to `MAX_QUEUE_NAME_LENGTH` characters). */
  queue: string;
}

export interface PublishOptions {
  /** Abandons the wait for the publish acknowledgement (the message may still have been stored). */
  signal?: AbortSignal;
}

export interface PublishResult {
  /** True if the bus already held a message with the same `dedupId` inside its duplicate window. */
  duplicate: boolean;
}

/** Per-message outcome of `publishWorkBatch`, in input order. */
export type PublishOutcome = { ok: true; duplicate: boolean } | { ok: false; error: StacklError };

/**
 * One delivery of a work message to a handler. The first of `ack`/`nak`/`term` settles it; later calls are ignored.
 * A handler that returns without settling abandons the delivery: it is redelivered after `ackWaitMs` (like a crash).
 * A handler that throws gets a `nak` with `retryDelayMs`, or a `term` if it threw a non-retryable `StacklError`.
 */
export interface WorkDelivery {
  readonly queue: string;
  readonly id: string;
  readonly dedupId: string;
  readonly data: Uint8Array;
  /** 1 on the first delivery, 2 on the first redelivery, … */
  readonly deliveryCount: number;
  /** `deliveryCount >= maxDeliver`: if this attempt does not ack (or term), the message is exhausted. */
  readonly lastDelivery: boolean;
  /** Aborted when the consumer gives up on this delivery (stop grace expired, or the consumer's signal aborted). */
  readonly signal: AbortSignal;
  /** Extends the ack wait by another `ackWaitMs` (done automatically while the handler runs, see `autoWorking`). */
  working(): void;
  /** Acknowledges and waits for the bus to confirm (JetStream "ackAck"). Rejects if the confirmation fails. */
  ack(): Promise<void>;
  /** Hands the message back for redelivery after `delayMs` (immediately if omitted). */
  nak(delayMs?: number): void;
  /** Never deliver this message again. */
  term(reason: string): void;
}

/** How a message's last delivery ended without an ack. */
export type ExhaustedOutcome = "nak" | "error" | "unsettled";

export interface ExhaustedEvent {
  delivery: WorkDelivery;
  outcome: ExhaustedOutcome;
  /** What the handler threw, for `outcome: "error"`. */
  error?: unknown;
}

export type WorkHandler = (delivery: WorkDelivery) => Promise<void>;

export interface ConsumeWorkOptions {
  /** Most handlers running at once in this consumer. Must be >= 1. */
  concurrency: number;
  /** Aborting it stops the consumer at once (like `stop({ graceMs: 0 })`). */
  signal: AbortSignal;
  /**
   * How long a delivery may go without `working()`/ack before it is redelivered. Shared by all consumers of the
   * queue (the last one to start wins).
   * @default 30000
   */
  ackWaitMs?: number;
  /**
   * Deliveries per message, the first included. Shared by all consumers of the queue.
   * @default 5
   */
  maxDeliver?: number;
  /**
   * Messages the consumer may pull ahead of its handlers (NATS `max_messages` per pull; the in-process bus hands
   * messages over one at a time and ignores it). More is faster with short handlers; a message waiting in the
   * client still ages toward its ack wait, so keep it near `concurrency` when handlers are long.
   * @default concurrency
   */
  prefetch?: number;
  /**
   * Call `working()` every `min(WORKING_INTERVAL_MS, ackWaitMs / 3)` while a handler runs.
   * @default true
   */
  autoWorking?: boolean;
  /**
   * Redelivery delay after a handler throws a retryable error, by the number of the failed delivery.
   * @default exponential from `RETRY_DELAY_BASE_MS` (1 s) up to `RETRY_DELAY_CAP_MS` (30 s), with jitter
   */
  retryDelayMs?: (deliveryCount: number) => number;
  /**
   * Called when a message's last delivery (`deliveryCount >= maxDeliver`) ends without an ack or term: the caller
   * records "max_deliver exhausted". The message is then terminated on the bus. Errors thrown here are logged.
   * (A worker that dies during the last delivery never calls it; the PostgreSQL sweeper covers that.)
   * @default none
   */
  onExhausted?: (event: ExhaustedEvent) => void | Promise<void>;
}

/** The states of a consumer; transitions are logged. */
export type WorkConsumerState = "starting" | "running" | "draining" | "stopped" | "failed";

export interface WorkConsumer {
  readonly queue: string;
  readonly state: WorkConsumerState;
  /** Handlers running right now. */
  readonly inFlight: number;
  /**
   * Stops pulling, hands back messages received but not started, waits for running handlers up to `graceMs`, then
   * aborts the rest (`delivery.signal`) and hands them back (nak). Idempotent.
   */
  stop(opts: { graceMs: number }): Promise<void>;
}

/** A doorbell: a core subject message, not persisted, delivered to whoever listens right now. */
export interface BellMessage {
  subject: string;
  data: Uint8Array;
}

export type BellHandler = (msg: BellMessage) => void | Promise<void>;
export type Unsubscribe = () => void;

export interface Bus {
  readonly kind: BusKind;

  /** Publishes one work notification to `queue` and waits for the bus to store it. */
  publishWork(queue: string, msg: WorkMessage, opts?: PublishOptions): Promise<PublishResult>;
  /** Publishes many at once, pipelined (no wait between messages). Never rejects; see each outcome. */
  publishWorkBatch(items: readonly WorkPublish[], opts?: PublishOptions): Promise<PublishOutcome[]>;
  /**
   * Starts a consumer on `queue`. Every consumer of the same queue (in this process or any other on the same bus)
   * shares one durable position: each message goes to one of them.
   */
  consumeWork(queue: string, opts: ConsumeWorkOptions, handler: WorkHandler): Promise<WorkConsumer>;

  /**
   * Rings a doorbell. `subject` is dot-separated tokens (no wildcards), e.g. `pool.P.jobs`. Fire-and-forget: throws
   * only on an invalid subject or a closed bus.
   */
  publish(subject: string, data: Uint8Array): void;
  /** Listens on a subject; `*` matches one token, a final `>` one or more. */
  subscribe(subject: string, handler: BellHandler): Unsubscribe;
  /** Resolves once every subscribe/publish issued before has reached the bus (a round trip on NATS). */
  flush(signal?: AbortSignal): Promise<void>;

  /** True if the bus answers right now (health checks). Never rejects. */
  ready(signal?: AbortSignal): Promise<boolean>;
  /** Stops every consumer (no grace) and closes. Idempotent. */
  close(): Promise<void>;
}
