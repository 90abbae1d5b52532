/**
 * LISTEN/NOTIFY for the `pg` adapter: one dedicated connection (outside the pool, since a pooled connection is shared
 * and LISTEN is per session) that reconnects with capped, jittered backoff when it is lost, re-LISTENs every channel
 * and then tells subscribers through `onReconnect` so they can re-read what they may have missed. A periodic ping
 * finds a connection that died silently.
 */
import pg from "pg";
import type { Logger } from "pino";
import { assertChannelName, type ListenOptions, type Unlisten } from "./db.js";
import { Deadline } from "./deadline.js";
import { StoreClosedError, StoreUnavailableError, toStoreError } from "./errors.js";

export interface PgListenerOptions {
  /** Config for the dedicated connection (connection string, timeouts, type parsers). */
  clientConfig: pg.ClientConfig;
  logger: Logger;
  /** First reconnect delay after the connection drops. @default 250 */
  reconnectBaseMs?: number;
  /** Longest delay between reconnect attempts. @default 5000 */
  reconnectCapMs?: number;
  /** How often an idle listener connection is pinged to detect a silent drop. @default 15000 */
  pingIntervalMs?: number;
  /** Budget for LISTEN/UNLISTEN and pings. @default 5000 */
  statementTimeoutMs?: number;
}

/** Listener connection lifecycle; transitions are logged. */
export type PgListenerState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

interface Subscription {
  onMessage: (payload: string) => void;
  onReconnect: (() => void) | undefined;
}

export class PgListener {
  readonly #o: Required<Omit<PgListenerOptions, "logger" | "clientConfig">>;
  readonly #config: pg.ClientConfig;
  readonly #log: Logger;
  readonly #channels = new Map<string, Set<Subscription>>();
  /** Channels LISTENed on the current connection. */
  readonly #listened = new Set<string>();
  /** LISTENs in flight on the current connection. */
  readonly #pending = new Map<string, Promise<void>>();
  #state: PgListenerState = "idle";
  #client: pg.Client | undefined;
  #connecting: Promise<void> | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #attempt = 0;

  constructor(options: PgListenerOptions) {
    this.#config = options.clientConfig;
    this.#log = options.logger;
    this.#o = {
      reconnectBaseMs: options.reconnectBaseMs ?? 250,
      reconnectCapMs: options.reconnectCapMs ?? 5000,
      pingIntervalMs: options.pingIntervalMs ?? 15_000,
      statementTimeoutMs: options.statementTimeoutMs ?? 5000,
    };
  }

  get state(): PgListenerState {
    return this.#state;
  }

  async listen(channel: string, onMessage: (payload: string) => void, opts: ListenOptions = {}): Promise<Unlisten> {
    assertChannelName(channel);
    if (this.#state === "closed") throw new StoreClosedError();
    const d = Deadline.of(opts, this.#o.statementTimeoutMs, `LISTEN ${channel}`);
    const sub: Subscription = { onMessage, onReconnect: opts.onReconnect };
    let subs = this.#channels.get(channel);
    if (subs === undefined) {
      subs = new Set();
      this.#channels.set(channel, subs);
    }
    subs.add(sub);
    try {
      if (this.#state === "idle" || this.#state === "connecting") {
        // The first subscriber opens the connection, which LISTENs on every registered channel.
        await d.race(this.#connectOnce());
      }
      if (this.#state === "connected") await this.#ensureListening(channel, d);
      // "reconnecting": registered; the reconnect LISTENs it and then calls onReconnect.
    } catch (err) {
      this.#remove(channel, sub);
      throw toStoreError(err, `LISTEN ${channel}`);
    }

    let removed = false;
    return async () => {
      if (removed) return;
      removed = true;
      const emptied = this.#remove(channel, sub);
      const client = this.#client;
      if (emptied && client !== undefined && this.#listened.has(channel)) {
        this.#listened.delete(channel);
        const u = Deadline.of(undefined, this.#o.statementTimeoutMs, `UNLISTEN ${channel}`);
        await u.race(client.query(`UNLISTEN ${channel}`)).catch((err: unknown) => {
          this.#log.warn({ err, channel }, "UNLISTEN failed");
        });
      }
    };
  }

  /** LISTEN on `channel` on the current connection unless already done (or in flight). */
  async #ensureListening(channel: string, d: Deadline): Promise<void> {
    const client = this.#client;
    if (client === undefined) return; // reconnecting: the reconnect LISTENs it
    if (this.#listened.has(channel)) return;
    let pending = this.#pending.get(channel);
    if (pending === undefined) {
      pending = client.query(`LISTEN ${channel}`).then(
        () => {
          this.#pending.delete(channel);
          if (client === this.#client) this.#listened.add(channel);
        },
        (err: unknown) => {
          this.#pending.delete(channel);
          throw err;
        },
      );
      this.#pending.set(channel, pending);
    }
    await d.race(pending);
  }

  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#transition("closed");
    clearTimeout(this.#reconnectTimer);
    clearInterval(this.#pingTimer);
    this.#channels.clear();
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) await client.end().catch(() => {});
  }

  /** Remove `sub`; true when `channel` has no subscribers left. */
  #remove(channel: string, sub: Subscription): boolean {
    const subs = this.#channels.get(channel);
    if (subs === undefined) return false;
    subs.delete(sub);
    if (subs.size > 0) return false;
    this.#channels.delete(channel);
    return true;
  }

  /** Open the connection once (first listen); failures leave the listener idle so the next listen retries. */
  #connectOnce(): Promise<void> {
    if (this.#connecting !== undefined) return this.#connecting;
    this.#transition("connecting");
    this.#connecting = this.#connect().then(
      () => {
        this.#connecting = undefined;
      },
      (err: unknown) => {
        this.#connecting = undefined;
        if (this.#state === "connecting") this.#transition("idle");
        throw err;
      },
    );
    return this.#connecting;
  }

  async #connect(): Promise<void> {
    const client = new pg.Client(this.#config);
    // An error handler must exist before connect: without one, a dropped connection crashes the process.
    client.on("error", (err) => this.#onDrop(client, err));
    client.on("end", () => this.#onDrop(client, undefined));
    client.on("notification", (msg) => this.#dispatch(msg.channel, msg.payload ?? ""));
    try {
      await client.connect();
      // Channels may be registered while we LISTEN: repeat until every registered channel is covered.
      const listened = new Set<string>();
      for (;;) {
        const missing = [...this.#channels.keys()].filter((c) => !listened.has(c));
        if (missing.length === 0) break;
        await client.query(missing.map((c) => `LISTEN ${c}`).join("; "));
        for (const c of missing) listened.add(c);
      }
      if (this.#state === "closed") throw new StoreClosedError();
      this.#listened.clear();
      this.#pending.clear();
      for (const c of listened) this.#listened.add(c);
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    this.#client = client;
    this.#attempt = 0;
    this.#transition("connected");
    clearInterval(this.#pingTimer);
    this.#pingTimer = setInterval(() => void this.#ping(client), this.#o.pingIntervalMs);
    this.#pingTimer.unref();
  }

  #onDrop(client: pg.Client, err: Error | undefined): void {
    if (client !== this.#client || this.#state === "closed") return;
    this.#log.warn({ err }, "notification connection lost; reconnecting");
    this.#client = undefined;
    this.#listened.clear();
    this.#pending.clear();
    clearInterval(this.#pingTimer);
    client.end().catch(() => {});
    this.#transition("reconnecting");
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#state !== "reconnecting") return;
    const exp = Math.min(this.#o.reconnectCapMs, this.#o.reconnectBaseMs * 2 ** this.#attempt);
    const delay = exp / 2 + Math.random() * (exp / 2); // jitter: 50–100 % of the backoff
    this.#attempt++;
    this.#reconnectTimer = setTimeout(() => void this.#reconnect(), delay);
    this.#reconnectTimer.unref();
  }

  async #reconnect(): Promise<void> {
    if (this.#state !== "reconnecting") return;
    try {
      await this.#connect();
    } catch (err) {
      this.#log.debug({ err, attempt: this.#attempt }, "notification connection reconnect failed");
      this.#scheduleReconnect();
      return;
    }
    if ((this.#state as PgListenerState) !== "connected") return; // closed meanwhile
    this.#log.info({ channels: [...this.#channels.keys()] }, "notification connection re-established");
    for (const subs of this.#channels.values()) {
      for (const sub of subs) {
        try {
          sub.onReconnect?.();
        } catch (err) {
          this.#log.error({ err }, "onReconnect callback threw");
        }
      }
    }
  }

  async #ping(client: pg.Client): Promise<void> {
    if (client !== this.#client) return;
    const d = Deadline.of(undefined, this.#o.statementTimeoutMs, "listener ping");
    try {
      await this.#run("SELECT 1", d);
    } catch (err) {
      // The socket may be half-open; destroying it fires "end", which reconnects.
      this.#log.warn({ err }, "notification connection ping failed");
      if (client === this.#client) client.connection.stream.destroy();
    }
  }

  async #run(sql: string, d: Deadline): Promise<void> {
    const client = this.#client;
    if (client === undefined) throw new StoreUnavailableError(`notification connection not connected (${sql})`);
    await d.race(client.query(sql));
  }

  #dispatch(channel: string, payload: string): void {
    const subs = this.#channels.get(channel);
    if (subs === undefined) return;
    for (const sub of subs) {
      try {
        sub.onMessage(payload);
      } catch (err) {
        this.#log.error({ err, channel }, "notification handler threw");
      }
    }
  }

  #transition(to: PgListenerState): void {
    if (this.#state === to) return;
    this.#log.debug({ from: this.#state, to }, "notification connection state");
    this.#state = to;
  }
}
