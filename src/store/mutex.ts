/**
 * A FIFO async mutex whose waiters give up when their deadline ends. PGlite has one connection, so the PGlite adapter
 * holds this for a whole transaction and for every statement outside one.
 */
import type { Deadline } from "./deadline.js";

interface Waiter {
  grant: () => void;
}

export class Mutex {
  #locked = false;
  readonly #waiters: Waiter[] = [];

  /** True while someone holds the lock. */
  get locked(): boolean {
    return this.#locked;
  }

  /** Wait for the lock (at most until `deadline` ends) and return the function that releases it. */
  async acquire(deadline: Deadline): Promise<() => void> {
    deadline.check();
    if (!this.#locked) {
      this.#locked = true;
      return this.#releaser();
    }
    let waiter: Waiter | undefined;
    const granted = new Promise<void>((resolve) => {
      waiter = { grant: resolve };
      this.#waiters.push(waiter);
    });
    await deadline.race(granted, () => {
      // Leave the queue; if the lock was already handed to us, pass it on.
      const i = waiter === undefined ? -1 : this.#waiters.indexOf(waiter);
      if (i >= 0) this.#waiters.splice(i, 1);
      else void granted.then(() => this.#release());
    });
    return this.#releaser();
  }

  /** Run `fn` while holding the lock. */
  async run<T>(deadline: Deadline, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(deadline);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#release();
    };
  }

  #release(): void {
    const next = this.#waiters.shift();
    if (next === undefined) this.#locked = false;
    else next.grant(); // ownership passes directly; #locked stays true
  }
}
