/** A counting semaphore whose waiters can all be released with `false` by `close()`. */
export class Semaphore {
  #free: number;
  #closed = false;
  readonly #waiters: Array<(ok: boolean) => void> = [];

  constructor(permits: number) {
    this.#free = permits;
  }

  /** Resolves `true` with a permit, or `false` (no permit) once closed. */
  acquire(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    const next = this.#closed ? undefined : this.#waiters.shift();
    if (next) next(true);
    else this.#free++;
  }

  /** Fails every pending and future `acquire()`. Permits already held stay valid until released. */
  close(): void {
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w(false);
  }
}
