import type { Logger } from "pino";
import type { Bus } from "../bus/bus.js";
import { type ChangeNotifier, WakeLatch } from "../store/change-notifier.js";
import { OUTBOX_CHANNEL, type TaskRepo } from "../store/task-repo.js";

export interface OutboxRelayOptions {
  /** Rows relayed per transaction. @default 256 */
  batch?: number;
  /** Safety wake-up when no NOTIFY arrives (e.g. while the listener reconnects). @default 5000 */
  idleWakeMs?: number;
  /** Pause after a failed relay (bus down). @default 1000 */
  errorBackoffMs?: number;
  /**
   * Wake on every outbox NOTIFY. Off, the relay only runs every `idleWakeMs` (a backstop relay in worker processes,
   * which then do not wake on every task created anywhere).
   * @default true
   */
  listen?: boolean;
}

const EMPTY = new Uint8Array(0);

/**
 * Publishes outbox rows (written in the same transaction as their task) to the bus, with `Nats-Msg-Id =
 * <task>:<epoch>`, and deletes them only after the bus stored them. Any number of relays may run (SKIP LOCKED).
 */
export class OutboxRelay {
  private readonly batch: number;
  private readonly idleWakeMs: number;
  private readonly errorBackoffMs: number;
  private readonly listen: boolean;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly deps: { repo: TaskRepo; bus: Bus; notifier: ChangeNotifier; logger: Logger },
    opts: OutboxRelayOptions = {},
  ) {
    this.batch = opts.batch ?? 256;
    this.idleWakeMs = opts.idleWakeMs ?? 5_000;
    this.errorBackoffMs = opts.errorBackoffMs ?? 1_000;
    this.listen = opts.listen ?? true;
  }

  start(signal: AbortSignal): void {
    this.loop ??= this.run(signal).catch((err) => {
      if (!signal.aborted) this.deps.logger.error({ err }, "outbox relay stopped");
    });
  }

  /** Resolves when the loop has ended (after its signal aborted). */
  async stopped(): Promise<void> {
    await this.loop;
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { repo, bus, notifier, logger } = this.deps;
    const latch = new WakeLatch();
    const unsubscribe = this.listen ? await notifier.subscribe(OUTBOX_CHANNEL, latch.wake) : () => {};
    try {
      while (!signal.aborted) {
        let relayed = 0;
        try {
          relayed = await repo.relayOutbox(
            this.batch,
            async (rows) => {
              const outcomes = await bus.publishWorkBatch(
                rows.map((r) => ({ queue: r.queue, id: r.taskId, dedupId: `${r.taskId}:${r.epoch}`, data: EMPTY })),
                { signal },
              );
              const failed = outcomes.find((o) => !o.ok);
              if (failed !== undefined && !failed.ok) throw failed.error;
            },
            signal,
          );
        } catch (err) {
          if (signal.aborted) return;
          logger.warn({ err }, "outbox relay failed; retrying");
          await sleep(this.errorBackoffMs, signal);
          continue;
        }
        if (relayed < this.batch) await waitWake(latch, this.idleWakeMs, signal);
      }
    } finally {
      unsubscribe();
    }
  }
}

/** Waits for a wake-up or `ms`, whichever comes first; resolves quietly when `signal` aborts. */
export async function waitWake(latch: WakeLatch, ms: number, signal: AbortSignal): Promise<void> {
  const timer = AbortSignal.any([signal, AbortSignal.timeout(ms)]);
  await latch.wait(timer).catch(() => undefined);
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
