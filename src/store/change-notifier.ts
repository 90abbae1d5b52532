import type { Db } from "./db.js";

/**
 * One LISTEN per channel per process, fanned out to any number of waiters. Waiters never poll: they wake on a
 * NOTIFY (delivered at commit) or when the listener reconnects (so they re-read what they might have missed).
 */
export class ChangeNotifier {
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly listening = new Map<string, Promise<() => Promise<void>>>();

  constructor(private readonly db: Db) {}

  /** Subscribes to wake-ups on `channel`; call the returned function to stop. Resolves once LISTEN is active. */
  async subscribe(channel: string, onWake: () => void): Promise<() => void> {
    let set = this.waiters.get(channel);
    if (set === undefined) {
      set = new Set();
      this.waiters.set(channel, set);
    }
    set.add(onWake);
    let listening = this.listening.get(channel);
    if (listening === undefined) {
      listening = this.db.listen(channel, () => this.wake(channel), { onReconnect: () => this.wake(channel) });
      this.listening.set(channel, listening);
      listening.catch(() => this.listening.delete(channel));
    }
    await listening;
    return () => {
      set.delete(onWake);
    };
  }

  /** Wakes every waiter of a channel (also used after a listener reconnect). */
  wake(channel: string): void {
    for (const fn of this.waiters.get(channel) ?? []) fn();
  }

  async close(): Promise<void> {
    const stops = await Promise.allSettled(this.listening.values());
    this.listening.clear();
    for (const s of stops) if (s.status === "fulfilled") await s.value();
  }
}

/**
 * An async wake-up latch: `wait(signal)` resolves at the next `wake()` (or at once if a wake happened since the last
 * wait), or rejects when the signal aborts.
 */
export class WakeLatch {
  private pending = false;
  private resolve: (() => void) | undefined;

  wake = (): void => {
    if (this.resolve !== undefined) {
      const r = this.resolve;
      this.resolve = undefined;
      r();
    } else {
      this.pending = true;
    }
  };

  wait(signal: AbortSignal): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    signal.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.resolve = undefined;
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.resolve = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
    });
  }
}
