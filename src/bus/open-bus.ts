import type { Logger } from "pino";
import type { Bus } from "./bus.js";
import { MemoryBus, type MemoryBusOptions } from "./memory-bus.js";
import { NatsBus, type NatsBusOptions } from "./nats-bus.js";

export interface OpenBusOptions {
  /**
   * NATS server URL(s), comma-separated. Without it the in-process bus is used (the embedded default).
   * @default undefined (in process)
   */
  url?: string;
  logger: Logger;
  /** Aborts connecting (the NATS connection is retried with backoff until then). */
  signal: AbortSignal;
  /**
   * Extra NATS settings (stream name, replicas, timeouts…).
   * @default {}
   */
  nats?: Omit<NatsBusOptions, "url" | "logger" | "signal">;
  /**
   * Extra in-process settings.
   * @default {}
   */
  memory?: Omit<MemoryBusOptions, "logger">;
}

/** Opens the configured bus: NATS JetStream when a URL is given, else the in-process bus. */
export async function openBus(opts: OpenBusOptions): Promise<Bus> {
  if (opts.url !== undefined && opts.url.trim() !== "") {
    return NatsBus.connect({ ...opts.nats, url: opts.url, logger: opts.logger, signal: opts.signal });
  }
  opts.signal.throwIfAborted();
  return new MemoryBus({ ...opts.memory, logger: opts.logger });
}
