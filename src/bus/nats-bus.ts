/**
 * The JetStream adapter (`@nats-io/*` v3). One work-queue stream (`STACKL_WORK`, subjects `stackl.work.<queue>`) and
 * one durable pull consumer per queue (`pool-<queue>`), both declared here in code and declared again whenever the
 * server says they are missing (a wiped store, a deleted consumer) — during publish and during consumption, without
 * restarting the consumer. The connection reconnects forever with backoff; consumption resumes after a reconnect.
 * Doorbells are core NATS subjects under `stackl.bell.`.
 *
 * Queue names are encoded into one subject token (`queueToken`), so any string is a valid queue name.
 */
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import { connect, headers, type NatsConnection, nanos, RequestError } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ErrorCode, StacklError } from "../errors.js";
import { backoffDelay, raceAbort, sleepUnlessAborted } from "./backoff.js";
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
import { validateSubject } from "./subject.js";
import { validateWorkMessage } from "./work-message.js";
import {
  type DeliverySource,
  type NormalizedConsumeOptions,
  normalizeConsumeOptions,
  type RawDelivery,
  type SourceHooks,
  startWorkPool,
} from "./work-pool.js";

/** Reconnect attempts after a connection loss: -1 = forever (a control plane outlives NATS restarts). */
export const MAX_RECONNECT_ATTEMPTS = -1;
/** Reconnect delay: half the time since the connection was lost, clamped to [base, cap], ± jitter. */
export const RECONNECT_BACKOFF_BASE_MS = 250;
export const RECONNECT_BACKOFF_CAP_MS = 5_000;
export const RECONNECT_JITTER = 0.2;
/** Client pings (DESIGN section 6 keepalive): a dead server is noticed within PING_INTERVAL_MS * (MAX_PINGS_OUT + 1). */
export const PING_INTERVAL_MS = 10_000;
export const MAX_PINGS_OUT = 2;
/** First connection: retried with this backoff until the caller's signal aborts (or FIRST_CONNECT_DEADLINE_MS). */
export const FIRST_CONNECT_BACKOFF_BASE_MS = 250;
export const FIRST_CONNECT_BACKOFF_CAP_MS = 5_000;
export const FIRST_CONNECT_DEADLINE_MS = 30_000;
/** Re-attaching a consumer after it lost its stream/consumer or failed: backoff base and cap. */
export const CONSUME_RESTART_BACKOFF_BASE_MS = 100;
export const CONSUME_RESTART_BACKOFF_CAP_MS = 5_000;
/** Pull request lifetime (nats.js default); idle heartbeats come every half of it. */
export const PULL_EXPIRES_MS = 30_000;
/** `ready()` gives the server this long to answer. */
export const READY_TIMEOUT_MS = 2_000;
/** `close()` waits this long for the connection to drain before closing it hard. */
export const CLOSE_DRAIN_TIMEOUT_MS = 5_000;
/** Header carrying `WorkMessage.id` (the dedup id travels as `Nats-Msg-Id`). */
export const WORK_ID_HEADER = "Stackl-Work-Id";
const MSG_ID_HEADER = "Nats-Msg-Id";
/** First server version documented to accept a reason with a term (`+TERM <reason>`). */
export const TERM_REASON_MIN_SERVER: readonly [number, number] = [2, 11];
/** JetStream API code for "stream name already in use" (a concurrent create). */
const STREAM_NAME_IN_USE = 10058;

export interface NatsBusOptions {
  /** Server URL(s), comma-separated, e.g. `nats://127.0.0.1:4222`. */
  url: string;
  logger: Logger;
  /**
   * Aborts the first connection attempt loop.
   * @default AbortSignal.timeout(FIRST_CONNECT_DEADLINE_MS)
   */
  signal?: AbortSignal;
  /**
   * Connection name shown by the server.
   * @default "stackl"
   */
  name?: string;
  /**
   * The work-queue stream.
   * @default "STACKL_WORK"
   */
  streamName?: string;
  /**
   * Work subjects are `<workSubjectPrefix>.<queue token>`.
   * @default "stackl.work"
   */
  workSubjectPrefix?: string;
  /**
   * Doorbell subjects are `<bellSubjectPrefix>.<subject>`.
   * @default "stackl.bell"
   */
  bellSubjectPrefix?: string;
  /**
   * The stream's `duplicate_window`.
   * @default DEFAULT_DUPLICATE_WINDOW_MS (2 min)
   */
  duplicateWindowMs?: number;
  /**
   * Stream replicas (3 on a cluster).
   * @default 1
   */
  replicas?: number;
  /**
   * The consumers' `max_ack_pending`: deliveries outstanding across all workers of one queue.
   * @default 1000
   */
  maxAckPending?: number;
  /**
   * Timeout of JetStream API calls, publish acknowledgements and ack confirmations.
   * @default 5000
   */
  requestTimeoutMs?: number;
  /**
   * Timeout of one connection attempt.
   * @default 5000
   */
  connectTimeoutMs?: number;
}

interface NormalizedNatsOptions {
  servers: string[];
  name: string;
  streamName: string;
  workSubjectPrefix: string;
  bellSubjectPrefix: string;
  duplicateWindowMs: number;
  replicas: number;
  maxAckPending: number;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
}

function normalizeNatsOptions(o: NatsBusOptions): NormalizedNatsOptions {
  const servers = o.url
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (servers.length === 0) throw StacklError.invalid([{ field: "url", message: "no NATS server URL" }]);
  return {
    servers,
    name: o.name ?? "stackl",
    streamName: o.streamName ?? "STACKL_WORK",
    workSubjectPrefix: o.workSubjectPrefix ?? "stackl.work",
    bellSubjectPrefix: o.bellSubjectPrefix ?? "stackl.bell",
    duplicateWindowMs: o.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS,
    replicas: o.replicas ?? 1,
    maxAckPending: o.maxAckPending ?? 1000,
    requestTimeoutMs: o.requestTimeoutMs ?? 5_000,
    connectTimeoutMs: o.connectTimeoutMs ?? 5_000,
  };
}

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

function isStreamNotFound(err: unknown): boolean {
  return (
    apiCode(err) === JetStreamApiCodes.StreamNotFound || (err instanceof Error && err.message === "stream not found")
  );
}

function isConsumerNotFound(err: unknown): boolean {
  return (
    apiCode(err) === JetStreamApiCodes.ConsumerNotFound ||
    (err instanceof Error && err.message === "consumer not found")
  );
}

/**
 * A JetStream publish nobody answered: no stream listens on the subject (it was lost) — nats.js reports this as
 * `JetStreamNotEnabled` with a no-responders `RequestError` as its cause.
 */
function isNoStreamForSubject(err: unknown): boolean {
  if (isStreamNotFound(err)) return true;
  if (err instanceof RequestError && err.isNoResponders()) return true;
  if (err instanceof Error && err.name === "JetStreamNotEnabled") return true;
  const cause = err instanceof Error ? err.cause : undefined;
  return cause instanceof RequestError && cause.isNoResponders();
}

/** What a queue's consumer should look like (the last `consumeWork` on a queue sets it). */
interface QueueSpec {
  queue: string;
  durable: string;
  subject: string;
  ackWaitMs: number;
  maxDeliver: number;
}

export class NatsBus implements Bus {
  readonly kind = "nats" as const;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #o: NormalizedNatsOptions;
  readonly #log: Logger;
  readonly #reconnect: ReconnectState;
  /** Single-flight stream declaration; dropped when the stream turns out to be missing. */
  #streamReady: Promise<void> | undefined;
  /** Single-flight consumer declarations by queue. */
  readonly #consumerReady = new Map<string, Promise<void>>();
  readonly #specs = new Map<string, QueueSpec>();
  readonly #consumers = new Set<WorkConsumer>();
  #closing: Promise<void> | undefined;

  /** Connects (retrying until `opts.signal` aborts) and returns the bus. Streams are declared lazily. */
  static async connect(opts: NatsBusOptions): Promise<NatsBus> {
    const o = normalizeNatsOptions(opts);
    const log = opts.logger.child({ component: "bus", bus: "nats" });
    const signal = opts.signal ?? AbortSignal.timeout(FIRST_CONNECT_DEADLINE_MS);
    const reconnect: ReconnectState = { lostAt: undefined };
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) throw toBusError(signal.reason, `connect to NATS ${o.servers.join(",")}`);
      try {
        const nc = await connect({
          servers: o.servers,
          name: o.name,
          timeout: o.connectTimeoutMs,
          maxReconnectAttempts: MAX_RECONNECT_ATTEMPTS,
          reconnectDelayHandler: () => reconnectDelay(reconnect),
          pingInterval: PING_INTERVAL_MS,
          maxPingOut: MAX_PINGS_OUT,
          // No stack capture for every request (acks are request/reply): measured at 5-6 % of worker CPU.
          noAsyncTraces: true,
        });
        if (signal.aborted) {
          await nc.close();
          continue; // throws above
        }
        log.info({ server: nc.getServer(), version: nc.info?.version }, "connected to NATS");
        const jsm = await jetstreamManager(nc, { timeout: o.requestTimeoutMs, checkAPI: false });
        return new NatsBus(nc, jsm, o, log, reconnect);
      } catch (err) {
        if (signal.aborted) continue;
        const delayMs = backoffDelay(attempt, FIRST_CONNECT_BACKOFF_BASE_MS, FIRST_CONNECT_BACKOFF_CAP_MS, 0.2);
        log.warn({ err, attempt, delay_ms: delayMs }, "NATS connection failed; retrying");
        await sleepUnlessAborted(delayMs, signal);
      }
    }
  }

  private constructor(
    nc: NatsConnection,
    jsm: JetStreamManager,
    o: NormalizedNatsOptions,
    log: Logger,
    reconnect: ReconnectState,
  ) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#o = o;
    this.#log = log;
    this.#reconnect = reconnect;
    this.#js = jetstream(nc, { timeout: o.requestTimeoutMs });
    void this.#watchConnection();
  }

  async #watchConnection(): Promise<void> {
    for await (const s of this.#nc.status()) {
      switch (s.type) {
        case "disconnect":
          this.#reconnect.lostAt ??= Date.now();
          this.#log.warn({ server: s.server }, "NATS connection lost; reconnecting");
          break;
        case "reconnect":
          this.#log.info(
            { server: s.server, down_ms: Date.now() - (this.#reconnect.lostAt ?? Date.now()) },
            "NATS reconnected",
          );
          this.#reconnect.lostAt = undefined;
          break;
        case "error":
          this.#log.warn({ err: s.error }, "NATS connection error");
          break;
        case "staleConnection":
          this.#log.warn("NATS connection stale (pings unanswered)");
          break;
        case "ldm":
          this.#log.warn({ server: s.server }, "NATS server entering lame-duck mode");
          break;
        case "slowConsumer":
          this.#log.warn({ sub: s.sub.getSubject() }, "NATS slow consumer");
          break;
        case "reconnecting":
        case "update":
        case "ping":
        case "forceReconnect":
        case "close":
          break;
        default: {
          const never: never = s;
          this.#log.debug({ status: never }, "unknown NATS status");
        }
      }
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Declarations

  #streamConfig(): StreamConfig {
    const o = this.#o;
    return {
      name: o.streamName,
      subjects: [`${o.workSubjectPrefix}.>`],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      num_replicas: o.replicas,
      duplicate_window: nanos(o.duplicateWindowMs),
      max_msgs: -1,
      max_bytes: -1,
      max_age: 0,
      max_consumers: -1,
    } as StreamConfig;
  }

  /** Declares the stream once (again after `#invalidateStream`). */
  #ensureStream(): Promise<void> {
    if (!this.#streamReady) {
      const p = this.#declareStream();
      this.#streamReady = p;
      p.catch(() => this.#invalidateStream(p));
    }
    return this.#streamReady;
  }

  /** Forgets the declared stream (and therefore every consumer) if `p` is still the current declaration. */
  #invalidateStream(p?: Promise<void>): void {
    if (p !== undefined && this.#streamReady !== p) return;
    this.#streamReady = undefined;
    this.#consumerReady.clear();
  }

  async #declareStream(): Promise<void> {
    const want = this.#streamConfig();
    const name = want.name;
    try {
      const info = await this.#jsm.streams.info(name);
      const cfg = info.config;
      if (cfg.retention !== RetentionPolicy.Workqueue) {
        throw new StacklError(
          ErrorCode.FailedPrecondition,
          `stream ${name} exists with retention ${cfg.retention}, not workqueue; delete it or pick another streamName`,
        );
      }
      const sameSubjects = cfg.subjects?.length === 1 && cfg.subjects[0] === want.subjects[0];
      if (!sameSubjects || cfg.duplicate_window !== want.duplicate_window || cfg.num_replicas !== want.num_replicas) {
        await this.#jsm.streams.update(name, {
          subjects: want.subjects,
          duplicate_window: want.duplicate_window,
          num_replicas: want.num_replicas,
        });
        this.#log.info({ stream: name }, "stream updated");
      }
      return;
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
    }
    try {
      await this.#jsm.streams.add(want);
      this.#log.info({ stream: name, subjects: want.subjects }, "stream declared");
    } catch (err) {
      if (apiCode(err) !== STREAM_NAME_IN_USE) throw err;
    }
  }

  #spec(queue: string): QueueSpec {
    const spec = this.#specs.get(queue);
    if (!spec) throw new Error(`no consumer spec for queue ${queue}`);
    return spec;
  }

  #consumerConfig(spec: QueueSpec): Partial<ConsumerConfig> {
    return {
      durable_name: spec.durable,
      filter_subject: spec.subject,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(spec.ackWaitMs),
      max_deliver: spec.maxDeliver,
      max_ack_pending: this.#o.maxAckPending,
      deliver_policy: DeliverPolicy.All,
      replay_policy: ReplayPolicy.Instant,
    };
  }

  /** Declares the queue's durable consumer once (again after `#invalidateQueue` or a lost stream). */
  #ensureConsumer(queue: string): Promise<void> {
    let p = this.#consumerReady.get(queue);
    if (!p) {
      const created = this.#declareConsumer(this.#spec(queue));
      p = created;
      this.#consumerReady.set(queue, created);
      created.catch(() => {
        if (this.#consumerReady.get(queue) === created) this.#consumerReady.delete(queue);
      });
    }
    return p;
  }

  #invalidateQueue(queue: string): void {
    this.#consumerReady.delete(queue);
    this.#streamReady = undefined;
  }

  async #declareConsumer(spec: QueueSpec): Promise<void> {
    const stream = this.#o.streamName;
    const want = this.#consumerConfig(spec);
    for (let attempt = 0; ; attempt++) {
      const streamReady = this.#ensureStream();
      await streamReady;
      try {
        const info = await this.#jsm.consumers.info(stream, spec.durable);
        const c = info.config;
        if (
          c.ack_wait !== want.ack_wait ||
          c.max_deliver !== want.max_deliver ||
          c.max_ack_pending !== want.max_ack_pending ||
          c.filter_subject !== want.filter_subject
        ) {
          await this.#jsm.consumers.update(stream, spec.durable, {
            ack_wait: want.ack_wait,
            max_deliver: want.max_deliver,
            max_ack_pending: want.max_ack_pending,
            filter_subject: want.filter_subject,
          });
          this.#log.info({ queue: spec.queue, consumer: spec.durable }, "consumer updated");
        }
        return;
      } catch (err) {
        if (isStreamNotFound(err) && attempt === 0) {
          this.#invalidateStream(streamReady);
          continue;
        }
        if (!isConsumerNotFound(err)) throw err;
      }
      try {
        await this.#jsm.consumers.add(stream, want);
        this.#log.info(
          { queue: spec.queue, consumer: spec.durable, ack_wait_ms: spec.ackWaitMs, max_deliver: spec.maxDeliver },
          "consumer declared",
        );
        return;
      } catch (err) {
        if (isStreamNotFound(err) && attempt === 0) {
          this.#invalidateStream(streamReady);
          continue;
        }
        throw err;
      }
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Work

  #workSubject(queue: string): string {
    return `${this.#o.workSubjectPrefix}.${queueToken(queue)}`;
  }

  async publishWork(queue: string, msg: WorkMessage, opts?: PublishOptions): Promise<PublishResult> {
    try {
      this.#assertOpen();
      validateWorkMessage(msg);
      const subject = this.#workSubject(queue);
      return await raceAbort(this.#publish(subject, msg), opts?.signal);
    } catch (err) {
      throw toBusError(err, `publish to ${queue}`);
    }
  }

  async #publish(subject: string, msg: WorkMessage): Promise<PublishResult> {
    const send = async (): Promise<PublishResult> => {
      const h = headers();
      h.set(WORK_ID_HEADER, msg.id);
      const ack = await this.#js.publish(subject, msg.data, {
        msgID: msg.dedupId,
        headers: h,
        timeout: this.#o.requestTimeoutMs,
        expect: { streamName: this.#o.streamName },
      });
      return { duplicate: ack.duplicate };
    };
    const streamReady = this.#ensureStream();
    await streamReady;
    try {
      return await send();
    } catch (err) {
      if (!isNoStreamForSubject(err)) throw err;
      this.#log.warn({ stream: this.#o.streamName, subject }, "stream missing on publish; declaring it again");
      this.#invalidateStream(streamReady);
      await this.#ensureStream();
      return await send();
    }
  }

  async publishWorkBatch(items: readonly WorkPublish[], opts?: PublishOptions): Promise<PublishOutcome[]> {
    return Promise.all(
      items.map((item) =>
        this.publishWork(item.queue, item, opts).then(
          (r): PublishOutcome => ({ ok: true, duplicate: r.duplicate }),
          (err: unknown): PublishOutcome => ({ ok: false, error: toBusError(err, `publish to ${item.queue}`) }),
        ),
      ),
    );
  }

  async consumeWork(queue: string, opts: ConsumeWorkOptions, handler: WorkHandler): Promise<WorkConsumer> {
    this.#assertOpen();
    const options = normalizeConsumeOptions(opts);
    const token = queueToken(queue);
    const spec: QueueSpec = {
      queue,
      durable: `pool-${token}`,
      subject: `${this.#o.workSubjectPrefix}.${token}`,
      ackWaitMs: options.ackWaitMs,
      maxDeliver: options.maxDeliver,
    };
    const previous = this.#specs.get(queue);
    this.#specs.set(queue, spec);
    if (previous && (previous.ackWaitMs !== spec.ackWaitMs || previous.maxDeliver !== spec.maxDeliver)) {
      this.#consumerReady.delete(queue);
    }
    try {
      await raceAbort(this.#ensureConsumer(queue), options.signal);
    } catch (err) {
      // A refusal by the server is a configuration problem: report it. A transport failure is not: the consumer
      // keeps trying in the background (NATS may simply not be up yet).
      if (err instanceof JetStreamApiError || err instanceof StacklError || options.signal.aborted) {
        throw toBusError(err, `declare consumer for ${queue}`);
      }
      this.#log.warn({ queue, err }, "declaring the consumer failed; retrying in the background");
    }
    const consumer = startWorkPool({
      queue,
      options,
      handler,
      logger: this.#log,
      source: (hooks) => new NatsSource(this.#sourceApi, spec, options, hooks, this.#log),
      onStopped: () => this.#consumers.delete(consumer),
    });
    this.#consumers.add(consumer);
    return consumer;
  }

  /** What a `NatsSource` needs from the bus. */
  readonly #sourceApi: NatsSourceApi = {
    ensureConsumer: (queue) => this.#ensureConsumer(queue),
    invalidateQueue: (queue) => this.#invalidateQueue(queue),
    getConsumer: (durable) => this.#js.consumers.get(this.#o.streamName, durable),
    requestTimeoutMs: () => this.#o.requestTimeoutMs,
    termTakesReason: () => serverAtLeast(this.#nc.info?.version, TERM_REASON_MIN_SERVER),
  };

  // ------------------------------------------------------------------------------------------------------------
  // Doorbells

  #bellSubject(subject: string): string {
    return `${this.#o.bellSubjectPrefix}.${subject}`;
  }

  publish(subject: string, data: Uint8Array): void {
    this.#assertOpen();
    validateSubject(subject, false);
    try {
      this.#nc.publish(this.#bellSubject(subject), data);
    } catch (err) {
      throw toBusError(err, `publish ${subject}`);
    }
  }

  subscribe(subject: string, handler: BellHandler): Unsubscribe {
    this.#assertOpen();
    validateSubject(subject, true);
    const strip = this.#o.bellSubjectPrefix.length + 1;
    const onError = (err: unknown, on: string): void => {
      this.#log.error({ subject: on, err }, "doorbell handler failed");
    };
    const sub = this.#nc.subscribe(this.#bellSubject(subject), {
      callback: (err, msg) => {
        if (err) {
          this.#log.error({ subject, err }, "doorbell subscription failed");
          return;
        }
        const on = msg.subject.slice(strip);
        try {
          const r = handler({ subject: on, data: msg.data });
          if (r instanceof Promise) r.catch((e: unknown) => onError(e, on));
        } catch (e) {
          onError(e, on);
        }
      },
    });
    return () => {
      if (!sub.isClosed()) sub.unsubscribe();
    };
  }

  async flush(signal?: AbortSignal): Promise<void> {
    try {
      this.#assertOpen();
      await raceAbort(this.#nc.flush(), signal);
    } catch (err) {
      throw toBusError(err, "flush");
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Lifecycle

  async ready(signal?: AbortSignal): Promise<boolean> {
    if (this.#closing || this.#nc.isClosed()) return false;
    const timeout = AbortSignal.timeout(READY_TIMEOUT_MS);
    try {
      await raceAbort(
        Promise.all([this.#nc.flush(), this.#jsm.getAccountInfo()]),
        signal ? AbortSignal.any([signal, timeout]) : timeout,
      );
      return true;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await Promise.all([...this.#consumers].map((c) => c.stop({ graceMs: 0 })));
    if (this.#nc.isClosed()) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#nc.drain(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, CLOSE_DRAIN_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      this.#log.debug({ err }, "NATS drain failed");
    } finally {
      clearTimeout(timer);
      if (!this.#nc.isClosed()) await this.#nc.close();
    }
    this.#log.info("NATS connection closed");
  }

  #assertOpen(): void {
    if (this.#closing || this.#nc.isClosed()) throw new StacklError(ErrorCode.Unavailable, "bus is closed");
  }
}

/** `version` ("2.12.15") is at least `[major, minor]`; false when unknown. */
function serverAtLeast(version: string | undefined, [major, minor]: readonly [number, number]): boolean {
  const m = /^v?(\d+)\.(\d+)/.exec(version ?? "");
  if (!m) return false;
  const [vMajor, vMinor] = [Number(m[1]), Number(m[2])];
  return vMajor > major || (vMajor === major && vMinor >= minor);
}

interface ReconnectState {
  /** When the connection was lost (undefined while connected). */
  lostAt: number | undefined;
}

/** nats.js asks before every dial (and while waiting): the wait grows with the outage. */
function reconnectDelay(state: ReconnectState): number {
  const down = state.lostAt === undefined ? 0 : Date.now() - state.lostAt;
  const raw = Math.min(RECONNECT_BACKOFF_CAP_MS, Math.max(RECONNECT_BACKOFF_BASE_MS, down / 2));
  return Math.round(raw * (1 + RECONNECT_JITTER * (2 * Math.random() - 1)));
}

interface NatsSourceApi {
  ensureConsumer(queue: string): Promise<void>;
  invalidateQueue(queue: string): void;
  getConsumer(durable: string): ReturnType<JetStreamClient["consumers"]["get"]>;
  requestTimeoutMs(): number;
  /** Whether the connected server understands `+TERM <reason>` (older ones may not treat it as a term). */
  termTakesReason(): boolean;
}

/**
 * Deliveries of one durable pull consumer via `consume()` (iterator mode, so pulling pauses while the pool is
 * full: at most about `concurrency` messages wait in the client). When the server reports the stream or consumer
 * missing or deleted, or the iterator fails, it declares both again and attaches a new `consume()`.
 */
class NatsSource implements DeliverySource {
  readonly #api: NatsSourceApi;
  readonly #spec: QueueSpec;
  readonly #opts: NormalizedConsumeOptions;
  readonly #hooks: SourceHooks;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  readonly #gen: AsyncGenerator<RawDelivery, void>;
  #messages: ConsumerMessages | undefined;

  constructor(api: NatsSourceApi, spec: QueueSpec, opts: NormalizedConsumeOptions, hooks: SourceHooks, log: Logger) {
    this.#api = api;
    this.#spec = spec;
    this.#opts = opts;
    this.#hooks = hooks;
    this.#log = log;
    this.#gen = this.#deliveries();
  }

  async next(): Promise<RawDelivery | undefined> {
    const r = await this.#gen.next();
    return r.done ? undefined : r.value;
  }

  stop(): void {
    this.#abort.abort();
    this.#messages?.stop();
  }

  async *#deliveries(): AsyncGenerator<RawDelivery, void> {
    const signal = this.#abort.signal;
    const { queue, durable } = this.#spec;
    for (let attempt = 0; !signal.aborted; attempt++) {
      let lost = false;
      try {
        await raceAbort(this.#api.ensureConsumer(queue), signal);
        const consumer = await raceAbort(this.#api.getConsumer(durable), signal);
        const messages = await consumer.consume({ max_messages: this.#opts.prefetch, expires: PULL_EXPIRES_MS });
        this.#messages = messages;
        if (signal.aborted) messages.stop();
        void this.#watch(messages, () => {
          lost = true;
        });
        this.#hooks.onActive(true);
        for await (const m of messages) {
          attempt = 0;
          yield this.#toRaw(m);
        }
      } catch (err) {
        if (!signal.aborted) {
          if (isStreamNotFound(err) || isConsumerNotFound(err)) lost = true;
          else this.#log.warn({ queue, err }, "work consumer failed; re-attaching");
        }
      } finally {
        this.#messages = undefined;
      }
      if (signal.aborted) break;
      this.#hooks.onActive(false);
      if (lost) this.#api.invalidateQueue(queue);
      const delayMs = backoffDelay(attempt, CONSUME_RESTART_BACKOFF_BASE_MS, CONSUME_RESTART_BACKOFF_CAP_MS, 0.2);
      await sleepUnlessAborted(delayMs, signal);
    }
  }

  /** Watches the consumer's notifications; a missing stream/consumer ends this `consume()` so it is re-declared. */
  async #watch(messages: ConsumerMessages, onLost: () => void): Promise<void> {
    const { queue } = this.#spec;
    for await (const s of messages.status()) {
      switch (s.type) {
        case "stream_not_found":
        case "consumer_not_found":
        case "consumer_deleted":
          this.#log.warn({ queue, status: s.type }, "work consumer lost its stream/consumer; declaring them again");
          onLost();
          messages.stop();
          return;
        case "heartbeats_missed":
          this.#log.warn({ queue, count: s.count }, "work consumer missed heartbeats");
          break;
        case "exceeded_limits":
          this.#log.warn({ queue, description: s.description }, "work consumer pull exceeded server limits");
          break;
        case "no_responders":
          this.#log.debug({ queue }, "JetStream did not answer a pull (server starting or away)");
          break;
        case "ordered_consumer_recreated":
        case "debug":
        case "discard":
        case "reset":
        case "next":
        case "heartbeat":
        case "flow_control":
        case "consumer_pinned":
        case "consumer_unpinned":
          break;
        default: {
          const never: never = s;
          this.#log.debug({ status: never }, "unknown consumer notification");
        }
      }
    }
  }

  #toRaw(m: JsMsg): RawDelivery {
    const timeout = this.#api.requestTimeoutMs();
    return {
      id: m.headers?.get(WORK_ID_HEADER) || String(m.seq),
      dedupId: m.headers?.get(MSG_ID_HEADER) || `seq:${m.seq}`,
      data: m.data,
      deliveryCount: m.info.deliveryCount,
      working: () => m.working(),
      ack: async () => {
        const ok = await m.ackAck({ timeout });
        if (!ok) throw new StacklError(ErrorCode.Unavailable, "ack not confirmed by JetStream");
      },
      nak: (delayMs) => m.nak(delayMs),
      term: (reason) => (this.#api.termTakesReason() ? m.term(reason) : m.term()),
    };
  }
}
