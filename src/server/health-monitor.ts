import { EventEmitter, on } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../observability/logger.js";

/**
 * One dependency whose readiness decides whether the server is SERVING: the store, the bus, later the policy
 * engine. Other parts of the system provide these; the server only polls them.
 */
export interface HealthComponent {
  /** Stable name, e.g. `store`, `bus` (log key `component`, `/healthz` key). */
  readonly name: string;
  /**
   * Resolves `true` when the component is ready. Must honour `signal` (aborted after `HEALTH_CHECK_TIMEOUT_MS` or on
   * shutdown); rejecting or not answering in time counts as not ready.
   */
  check(signal: AbortSignal): Promise<boolean>;
  /**
   * Fully-qualified services (e.g. `stackl.v1.DocumentService`) that need this component.
   * @default every service
   */
  readonly services?: readonly string[];
}

/** Period between two rounds of readiness checks. */
export const HEALTH_POLL_INTERVAL_MS = 2_000;
/** A component that has not answered within this time is not ready. */
export const HEALTH_CHECK_TIMEOUT_MS = 1_500;

export type ServingStatus = "SERVING" | "NOT_SERVING";

export interface HealthMonitorOptions {
  /** Components polled every round. @default [] (always SERVING while running) */
  components?: readonly HealthComponent[];
  /** Services answering by name, besides the overall `""`. @default [] */
  services?: readonly string[];
  logger: Logger;
  /** @default HEALTH_POLL_INTERVAL_MS */
  pollIntervalMs?: number;
  /** @default HEALTH_CHECK_TIMEOUT_MS */
  checkTimeoutMs?: number;
}

export interface HealthSnapshot {
  status: ServingStatus;
  draining: boolean;
  components: Record<string, boolean>;
}

/**
 * Polls the components and derives a serving status for `""` (every component ready) and for each named service
 * (every component it needs ready). NOT_SERVING before the first round completes and from `drain()` on. Emits a
 * change event whenever any status changes, which `watch()` turns into a stream.
 */
export class HealthMonitor {
  private readonly components: readonly HealthComponent[];
  private readonly services: ReadonlySet<string>;
  private readonly logger: Logger;
  private readonly pollIntervalMs: number;
  private readonly checkTimeoutMs: number;
  private readonly ready = new Map<string, boolean>();
  private readonly events = new EventEmitter();
  private statuses = new Map<string, ServingStatus>();
  private checked = false;
  private draining = false;

  constructor(options: HealthMonitorOptions) {
    this.components = options.components ?? [];
    this.services = new Set(["", ...(options.services ?? [])]);
    this.logger = options.logger.child({ component: "health" });
    this.pollIntervalMs = options.pollIntervalMs ?? HEALTH_POLL_INTERVAL_MS;
    this.checkTimeoutMs = options.checkTimeoutMs ?? HEALTH_CHECK_TIMEOUT_MS;
    this.events.setMaxListeners(0);
    const names = new Set<string>();
    for (const c of this.components) {
      if (names.has(c.name)) throw new Error(`health component "${c.name}" registered twice`);
      names.add(c.name);
    }
    this.recompute();
  }

  /** True when `service` is known (`""` always is). */
  knows(service: string): boolean {
    return this.services.has(service);
  }

  /** Current status of a known service, `undefined` for an unknown one. */
  status(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  snapshot(): HealthSnapshot {
    return {
      status: this.statuses.get("") ?? "NOT_SERVING",
      draining: this.draining,
      components: Object.fromEntries(this.components.map((c) => [c.name, this.ready.get(c.name) === true])),
    };
  }

  /** One round of checks, all components in parallel. */
  async checkOnce(signal: AbortSignal): Promise<void> {
    await Promise.all(this.components.map((c) => this.checkComponent(c, signal)));
    this.checked = true;
    this.recompute();
  }

  /** Runs rounds every `pollIntervalMs` until `signal` aborts or the monitor drains. Never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted && !this.draining) {
      await this.checkOnce(signal);
      try {
        await sleep(this.pollIntervalMs, undefined, { signal });
      } catch {
        return; // aborted
      }
    }
  }

  /** From now on every service is NOT_SERVING (shutdown). */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.recompute();
  }

  /**
   * The status of `service` now and after every change (each transition, in order, even if the consumer is slow),
   * until `signal` aborts (the iterator then ends without error). Unknown services yield `undefined` once (SERVICE_UNKNOWN) and then wait, as the gRPC health protocol asks.
   */
  async *watch(service: string, signal: AbortSignal): AsyncGenerator<ServingStatus | undefined> {
    if (signal.aborted) return;
    // Subscribe before the first yield so that a change while the consumer holds the first value is not lost.
    const changes = on(this.events, "change", { signal });
    try {
      let last = this.status(service);
      yield last;
      for await (const [statuses] of changes as AsyncIterable<[ReadonlyMap<string, ServingStatus>]>) {
        const now = statuses.get(service);
        if (now !== last) {
          last = now;
          yield now;
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    } finally {
      await changes.return?.();
    }
  }

  private async checkComponent(component: HealthComponent, outer: AbortSignal): Promise<void> {
    const timeout = AbortSignal.timeout(this.checkTimeoutMs);
    const signal = AbortSignal.any([outer, timeout]);
    let ok = false;
    let error: unknown;
    try {
      ok = await new Promise<boolean>((resolve, reject) => {
        const onAbort = (): void => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        component.check(signal).then(
          (v) => {
            signal.removeEventListener("abort", onAbort);
            resolve(v === true);
          },
          (e: unknown) => {
            signal.removeEventListener("abort", onAbort);
            reject(e);
          },
        );
      });
    } catch (err) {
      error = timeout.aborted ? new Error(`no answer within ${this.checkTimeoutMs} ms`) : err;
    }
    const before = this.ready.get(component.name);
    this.ready.set(component.name, ok);
    if (before !== ok && !outer.aborted) {
      if (ok) this.logger.info({ health_component: component.name, ready: true }, "component ready");
      else this.logger.warn({ health_component: component.name, ready: false, err: error }, "component not ready");
    }
  }

  private recompute(): void {
    const next = new Map<string, ServingStatus>();
    for (const service of this.services) {
      const needed = this.components.filter(
        (c) => service === "" || c.services === undefined || c.services.includes(service),
      );
      const serving = this.checked && !this.draining && needed.every((c) => this.ready.get(c.name) === true);
      next.set(service, serving ? "SERVING" : "NOT_SERVING");
    }
    let changed = false;
    for (const [service, status] of next) {
      if (this.statuses.get(service) !== status) changed = true;
    }
    this.statuses = next;
    if (changed) {
      this.logger.debug({ status: next.get("") }, "health status changed");
      this.events.emit("change", next);
    }
  }
}
