/**
 * A wake-up signal for loops that sleep until "something changed". Take the promise from `next()` BEFORE checking
 * for work, then await it if there was none: a `notify()` in between is never lost.
 */
export class Notifier {
  private waiters: Array<() => void> = [];

  /** Resolves at the next `notify()`. */
  next(): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
    });
  }

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
