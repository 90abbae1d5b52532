import type { Db, Unlisten } from "../store/db.js";
import { JOB_CHANGES_CHANNEL, JOB_LOGS_CHANNEL, JOB_TARGETS_CHANNEL } from "../store/job-repo.js";

/** The NOTIFY channels job waiters can follow. */
export type JobEventKind = "changes" | "logs" | "targets";

const CHANNEL: Record<JobEventKind, string> = {
  changes: JOB_CHANGES_CHANNEL,
  logs: JOB_LOGS_CHANNEL,
  targets: JOB_TARGETS_CHANNEL,
};

interface Channel {
  readonly byKey: Map<string, Set<() => void>>;
  readonly any: Set<(payload: string) => void>;
  listening: Promise<Unlisten> | undefined;
}

/**
 * One LISTEN per job channel per process, fanned out by payload (job id, or target), so that a thousand waiters on
 * different jobs do not all wake on every change. Waiters re-read PostgreSQL when woken; after the listening
 * connection reconnects (notifications may have been lost) every waiter is woken.
 */
export class JobEvents {
  private readonly channels = new Map<JobEventKind, Channel>();
  private closed = false;

  constructor(private readonly db: Db) {}

  /** Calls `onWake` on every notification about `key` (a job id; a target for `targets`). Resolves once listening. */
  async subscribe(kind: JobEventKind, key: string, onWake: () => void): Promise<() => void> {
    const ch = this.channel(kind);
    let set = ch.byKey.get(key);
    if (set === undefined) {
      set = new Set();
      ch.byKey.set(key, set);
    }
    set.add(onWake);
    const remove = (): void => {
      set.delete(onWake);
      if (set.size === 0 && ch.byKey.get(key) === set) ch.byKey.delete(key);
    };
    try {
      await this.listen(kind, ch);
    } catch (err) {
      remove();
      throw err;
    }
    return remove;
  }

  /** Calls `onPayload` for every notification on the channel (the payload is the job id or target). */
  async subscribeAll(kind: JobEventKind, onPayload: (payload: string) => void): Promise<() => void> {
    const ch = this.channel(kind);
    ch.any.add(onPayload);
    try {
      await this.listen(kind, ch);
    } catch (err) {
      ch.any.delete(onPayload);
      throw err;
    }
    return () => {
      ch.any.delete(onPayload);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const stops = await Promise.allSettled([...this.channels.values()].map((c) => c.listening));
    this.channels.clear();
    for (const s of stops) if (s.status === "fulfilled" && s.value !== undefined) await s.value().catch(() => {});
  }

  private channel(kind: JobEventKind): Channel {
    let ch = this.channels.get(kind);
    if (ch === undefined) {
      ch = { byKey: new Map(), any: new Set(), listening: undefined };
      this.channels.set(kind, ch);
    }
    return ch;
  }

  private async listen(kind: JobEventKind, ch: Channel): Promise<void> {
    if (this.closed) throw new Error("job events closed");
    if (ch.listening === undefined) {
      ch.listening = this.db.listen(CHANNEL[kind], (payload) => this.deliver(ch, payload), {
        onReconnect: () => this.wakeAll(ch),
      });
      ch.listening.catch(() => {
        ch.listening = undefined;
      });
    }
    await ch.listening;
  }

  private deliver(ch: Channel, payload: string): void {
    for (const fn of ch.byKey.get(payload) ?? []) fn();
    for (const fn of ch.any) fn(payload);
  }

  private wakeAll(ch: Channel): void {
    for (const set of ch.byKey.values()) for (const fn of set) fn();
    for (const fn of ch.any) fn("");
  }
}
