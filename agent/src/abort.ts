/** Small AbortSignal helpers: every wait in the agent is bounded or abortable. */

/** Resolves true after `ms`, or false as soon as `signal` aborts (never rejects). Leaves no timer behind. */
export function delay(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Resolves with `promise`'s value, or with `undefined` when `ms` elapses or `signal` aborts first. */
export function within<T>(promise: Promise<T>, ms: number, signal?: AbortSignal): Promise<T | undefined> {
  return new Promise<T | undefined>((resolve, reject) => {
    let settled = false;
    const finish = (settle: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onGiveUp);
      settle();
    };
    const onGiveUp = (): void => finish(() => resolve(undefined));
    const timer = setTimeout(onGiveUp, ms);
    if (signal?.aborted) {
      onGiveUp();
      return;
    }
    signal?.addEventListener("abort", onGiveUp, { once: true });
    promise.then(
      (value) => finish(() => resolve(value)),
      (err: unknown) => finish(() => reject(err)),
    );
  });
}

/** An error's message, whatever was thrown. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
