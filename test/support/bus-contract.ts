// The behaviour every `Bus` adapter must show, run against the in-process bus (unit) and a real nats-server
// (integration). One environment per suite; every test uses its own queue names and dedup ids.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import type { BellMessage, Bus, ExhaustedEvent, WorkConsumer, WorkDelivery } from "../../src/bus/bus.js";
import { ErrorCode, StacklError } from "../../src/errors.js";

/** Bounded wait for async conditions in these tests. */
export const waitMs = 15_000;

export interface BusEnv {
  /** The bus under test. */
  bus: Bus;
  /** Another replica on the same backend (a second connection on NATS; the same instance in process). */
  openPeer(): Promise<Bus>;
  /** Messages the backend still holds for `queue` (not yet acked or terminated). */
  pending(queue: string): Promise<number>;
  close(): Promise<void>;
}

/** Collects values; `waitFor` resolves once a predicate over everything collected holds, or fails at a deadline. */
export class Recorder<T> {
  readonly items: T[] = [];
  readonly #waiters = new Set<() => void>();

  readonly push = (item: T): void => {
    this.items.push(item);
    for (const w of [...this.#waiters]) w();
  };

  waitFor(predicate: (items: readonly T[]) => boolean, what: string, timeoutMs = waitMs): Promise<void> {
    if (predicate(this.items)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!predicate(this.items)) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (have ${this.items.length})`));
      }, timeoutMs);
      this.#waiters.add(check);
    });
  }

  /** Waits until at least `n` items were collected. */
  count(n: number, what: string, timeoutMs = waitMs): Promise<void> {
    return this.waitFor((items) => items.length >= n, `${n} ${what}`, timeoutMs);
  }
}

/** A promise with its resolver, to hold handlers until a test lets them go. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Poll `condition` with a short backoff until it holds; fail after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = waitMs,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let pause = 5;
  for (;;) {
    if (await condition()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(pause);
    pause = Math.min(pause * 2, 100);
  }
}

let counter = 0;
/** A queue name unique to this run (with a character that needs encoding, to exercise the encoding everywhere). */
export function uniqueQueue(label: string): string {
  counter++;
  return `${label}.${counter}_${randomUUID().slice(0, 8)}`;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function work(id: string, epoch = 1, body = id): { id: string; dedupId: string; data: Uint8Array } {
  return { id, dedupId: `${id}:${epoch}:${randomUUID()}`, data: enc.encode(body) };
}

export interface Seen {
  id: string;
  dedupId: string;
  body: string;
  deliveryCount: number;
  at: number;
}

function seen(d: WorkDelivery): Seen {
  return { id: d.id, dedupId: d.dedupId, body: dec.decode(d.data), deliveryCount: d.deliveryCount, at: Date.now() };
}

/** Runs the contract against the adapter `makeEnv` builds. */
export function busContract(name: string, makeEnv: () => Promise<BusEnv>): void {
  describe(`Bus contract: ${name}`, () => {
    let env: BusEnv;
    const consumers: WorkConsumer[] = [];
    const stops: AbortController[] = [];

    before(async () => {
      env = await makeEnv();
    });
    after(async () => {
      for (const s of stops) s.abort();
      await Promise.all(consumers.map((c) => c.stop({ graceMs: 0 })));
      await env.close();
    });

    /** A consumer that is stopped when the suite ends. */
    async function consume(
      queue: string,
      opts: Partial<Parameters<Bus["consumeWork"]>[1]>,
      handler: (d: WorkDelivery) => Promise<void>,
      bus: Bus = env.bus,
    ): Promise<WorkConsumer> {
      const ac = new AbortController();
      stops.push(ac);
      const c = await bus.consumeWork(queue, { concurrency: 1, signal: ac.signal, ...opts }, handler);
      consumers.push(c);
      return c;
    }

    test("publish then consume delivers id, dedupId, data and deliveryCount 1; ack removes the message", async () => {
      const q = uniqueQueue("basic");
      const m = work("task-1", 3, "hello");
      const r = await env.bus.publishWork(q, m);
      assert.equal(r.duplicate, false);
      const got = new Recorder<Seen>();
      const acked = new Recorder<string>();
      const c = await consume(q, { concurrency: 2 }, async (d) => {
        got.push(seen(d));
        assert.equal(d.queue, q);
        assert.equal(d.lastDelivery, false);
        assert.equal(d.signal.aborted, false);
        await d.ack();
        acked.push(d.id);
      });
      await acked.count(1, "acks");
      assert.deepEqual(
        got.items.map(({ id, dedupId, body, deliveryCount }) => ({ id, dedupId, body, deliveryCount })),
        [{ id: "task-1", dedupId: m.dedupId, body: "hello", deliveryCount: 1 }],
      );
      assert.equal(await env.pending(q), 0);
      assert.equal(c.state, "running");
      await c.stop({ graceMs: 1_000 });
      assert.equal(c.state, "stopped");
    });

    test("messages published before any consumer exists are kept and delivered later", async () => {
      const q = uniqueQueue("early");
      for (let i = 0; i < 5; i++) await env.bus.publishWork(q, work(`early-${i}`));
      assert.equal(await env.pending(q), 5);
      const acked = new Recorder<string>();
      await consume(q, { concurrency: 2 }, async (d) => {
        await d.ack();
        acked.push(d.id);
      });
      await acked.count(5, "acks");
      assert.deepEqual([...acked.items].sort(), ["early-0", "early-1", "early-2", "early-3", "early-4"]);
      assert.equal(await env.pending(q), 0);
    });

    test("a second publish with the same dedupId is reported duplicate and delivered once", async () => {
      const q = uniqueQueue("dedup");
      const m = work("task-d");
      assert.deepEqual(await env.bus.publishWork(q, m), { duplicate: false });
      assert.deepEqual(await env.bus.publishWork(q, { ...m, data: enc.encode("other") }), { duplicate: true });
      const next = work("task-d", 2); // the next epoch is new work
      assert.deepEqual(await env.bus.publishWork(q, next), { duplicate: false });
      assert.equal(await env.pending(q), 2);
      const got = new Recorder<Seen>();
      await consume(q, {}, async (d) => {
        got.push(seen(d));
        await d.ack();
      });
      await got.count(2, "deliveries");
      assert.deepEqual(got.items.map((s) => s.dedupId).sort(), [m.dedupId, next.dedupId].sort());
      assert.equal(got.items.find((s) => s.dedupId === m.dedupId)?.body, "task-d");
      await waitUntil(async () => (await env.pending(q)) === 0, "queue empty");
    });

    test("publishWorkBatch pipelines, reports duplicates and per-item errors in order", async () => {
      const q1 = uniqueQueue("batch1");
      const q2 = uniqueQueue("batch2");
      const items = Array.from({ length: 40 }, (_, i) => ({ queue: i % 2 === 0 ? q1 : q2, ...work(`b-${i}`) }));
      const dup = { ...items[3]! };
      const bad = { queue: q1, id: "b-bad", dedupId: "", data: enc.encode("x") };
      const outcomes = await env.bus.publishWorkBatch([...items, dup, bad]);
      assert.equal(outcomes.length, 42);
      for (const o of outcomes.slice(0, 40)) assert.deepEqual(o, { ok: true, duplicate: false });
      assert.deepEqual(outcomes[40], { ok: true, duplicate: true });
      const last = outcomes[41]!;
      assert.equal(last.ok, false);
      assert.ok(!last.ok && last.error instanceof StacklError && last.error.code === ErrorCode.InvalidArgument);
      assert.equal(await env.pending(q1), 20);
      assert.equal(await env.pending(q2), 20);
    });

    test("nak(delay) redelivers after the delay with a higher deliveryCount", async () => {
      const q = uniqueQueue("nak");
      const got = new Recorder<Seen>();
      await consume(q, { concurrency: 2, ackWaitMs: 30_000 }, async (d) => {
        got.push(seen(d));
        if (d.deliveryCount === 1) d.nak(400);
        else await d.ack();
      });
      await env.bus.publishWork(q, work("task-n"));
      await got.count(2, "deliveries");
      const [first, second] = got.items as [Seen, Seen];
      assert.deepEqual([first.deliveryCount, second.deliveryCount], [1, 2]);
      const gap = second.at - first.at;
      assert.ok(gap >= 350, `redelivered after ${gap} ms, expected >= 400 ms`);
      assert.ok(gap < 20_000, `redelivered after ${gap} ms, long before ack wait`);
      await waitUntil(async () => (await env.pending(q)) === 0, "queue empty");
    });

    test("a delivery left unsettled is redelivered after the ack wait", async () => {
      const q = uniqueQueue("ackwait");
      const got = new Recorder<Seen>();
      await consume(q, { concurrency: 2, ackWaitMs: 1_000 }, async (d) => {
        got.push(seen(d));
        if (d.deliveryCount >= 2) await d.ack();
        // first delivery: return without settling, like a worker that lost track of it
      });
      await env.bus.publishWork(q, work("task-w"));
      await got.count(2, "deliveries");
      const [first, second] = got.items as [Seen, Seen];
      assert.equal(second.deliveryCount, 2);
      const gap = second.at - first.at;
      assert.ok(gap >= 900, `redelivered after ${gap} ms, expected about the 1000 ms ack wait`);
    });

    test("a delivery whose handler blocks past the ack wait is redelivered meanwhile (no working())", async () => {
      const q = uniqueQueue("stall");
      const got = new Recorder<Seen>();
      const release = gate();
      await consume(q, { concurrency: 2, ackWaitMs: 1_000, autoWorking: false }, async (d) => {
        got.push(seen(d));
        if (d.deliveryCount === 1) await release.promise;
        else await d.ack();
      });
      await env.bus.publishWork(q, work("task-s"));
      await got.count(2, "deliveries");
      assert.deepEqual(
        got.items.map((s) => s.deliveryCount),
        [1, 2],
      );
      release.open();
    });

    test("working() runs automatically while a handler runs, so a long handler is not redelivered", async () => {
      const q = uniqueQueue("working");
      const got = new Recorder<Seen>();
      const done = new Recorder<number>();
      await consume(q, { concurrency: 2, ackWaitMs: 1_000 }, async (d) => {
        got.push(seen(d));
        await delay(2_600); // simulated work, 2.6 ack waits
        done.push(got.items.length);
        await d.ack();
      });
      await env.bus.publishWork(q, work("task-long"));
      await done.count(1, "finished handlers");
      assert.equal(done.items[0], 1, "no redelivery while the handler ran");
      assert.equal(got.items[0]!.deliveryCount, 1);
      await waitUntil(async () => (await env.pending(q)) === 0, "queue empty");
    });

    test("term(reason) stops redelivery and removes the message", async () => {
      const q = uniqueQueue("term");
      const got = new Recorder<Seen>();
      const exhausted = new Recorder<ExhaustedEvent>();
      await consume(q, { ackWaitMs: 1_000, onExhausted: exhausted.push }, async (d) => {
        got.push(seen(d));
        d.term("bad input");
      });
      await env.bus.publishWork(q, work("task-t"));
      await got.count(1, "deliveries");
      await waitUntil(async () => (await env.pending(q)) === 0, "termed message removed");
      // Publish a marker after it: on a single-slot consumer it arrives only after anything redelivered earlier.
      await env.bus.publishWork(q, work("marker"));
      await got.waitFor((items) => items.some((s) => s.id === "marker"), "the marker");
      assert.deepEqual(
        got.items.map((s) => s.id),
        ["task-t", "marker"],
      );
      assert.equal(exhausted.items.length, 0);
    });

    test("a non-retryable StacklError from the handler terminates; other errors nak with retryDelayMs", async () => {
      const q = uniqueQueue("errors");
      const got = new Recorder<Seen>();
      await consume(q, { concurrency: 2, maxDeliver: 5, retryDelayMs: () => 50 }, async (d) => {
        got.push(seen(d));
        if (d.id === "terminal") throw StacklError.invalid([{ field: "x", message: "broken" }]);
        if (d.deliveryCount < 3) throw new Error("transient");
        await d.ack();
      });
      await env.bus.publishWork(q, work("terminal"));
      await env.bus.publishWork(q, work("flaky"));
      await got.waitFor((items) => items.filter((s) => s.id === "flaky").length >= 3, "3 deliveries of flaky");
      await waitUntil(async () => (await env.pending(q)) === 0, "queue empty");
      assert.equal(got.items.filter((s) => s.id === "terminal").length, 1);
      assert.deepEqual(
        got.items.filter((s) => s.id === "flaky").map((s) => s.deliveryCount),
        [1, 2, 3],
      );
    });

    test("max_deliver exhausted: the hook fires once on the last delivery and the message is gone", async () => {
      const q = uniqueQueue("exhaust");
      const got = new Recorder<Seen>();
      const exhausted = new Recorder<ExhaustedEvent>();
      await consume(
        q,
        { concurrency: 2, maxDeliver: 3, retryDelayMs: () => 20, onExhausted: exhausted.push },
        async (d) => {
          got.push(seen(d));
          if (d.id === "nakker") {
            d.nak(10);
            return;
          }
          if (d.id === "silent") return; // unsettled: redelivered after the ack wait, exhausted on the last one
          throw new Error(`boom ${d.deliveryCount}`);
        },
      );
      // ack wait is the default 30 s: only "silent" needs it, so give it its own consumer below
      await env.bus.publishWork(q, work("failer"));
      await env.bus.publishWork(q, work("nakker"));
      await exhausted.count(2, "exhausted events");
      const byId = new Map(exhausted.items.map((e) => [e.delivery.id, e]));
      const failer = byId.get("failer");
      const nakker = byId.get("nakker");
      assert.ok(failer && nakker);
      assert.equal(failer.outcome, "error");
      assert.match(String((failer.error as Error).message), /boom 3/);
      assert.equal(failer.delivery.deliveryCount, 3);
      assert.equal(failer.delivery.lastDelivery, true);
      assert.equal(nakker.outcome, "nak");
      assert.equal(nakker.delivery.deliveryCount, 3);
      await waitUntil(async () => (await env.pending(q)) === 0, "exhausted messages terminated");
      assert.equal(got.items.filter((s) => s.id === "failer").length, 3);
      assert.equal(got.items.filter((s) => s.id === "nakker").length, 3);

      const q2 = uniqueQueue("exhaust-silent");
      const silent = new Recorder<ExhaustedEvent>();
      await consume(q2, { maxDeliver: 2, ackWaitMs: 500, onExhausted: silent.push }, async () => {});
      await env.bus.publishWork(q2, work("silent"));
      await silent.count(1, "exhausted events");
      assert.equal(silent.items[0]!.outcome, "unsettled");
      assert.equal(silent.items[0]!.delivery.deliveryCount, 2);
      await waitUntil(async () => (await env.pending(q2)) === 0, "exhausted message terminated");
    });

    test("concurrency limits the handlers running at once", async () => {
      const q = uniqueQueue("conc");
      let running = 0;
      let max = 0;
      const acked = new Recorder<string>();
      const total = 24;
      for (let i = 0; i < total; i++) await env.bus.publishWork(q, work(`c-${i}`));
      await consume(q, { concurrency: 3 }, async (d) => {
        running++;
        max = Math.max(max, running);
        await delay(15); // simulated work
        running--;
        await d.ack();
        acked.push(d.id);
      });
      await acked.count(total, "acks");
      assert.equal(max, 3);
    });

    test("two consumers of one queue share it: each message goes to one of them", async () => {
      const q = uniqueQueue("shared");
      const peer = await env.openPeer();
      const a = new Recorder<string>();
      const b = new Recorder<string>();
      const handler = (r: Recorder<string>) => async (d: WorkDelivery) => {
        await delay(5);
        await d.ack();
        r.push(d.id);
      };
      await consume(q, { concurrency: 2 }, handler(a));
      await consume(q, { concurrency: 2 }, handler(b), peer);
      const total = 30;
      await env.bus.publishWorkBatch(Array.from({ length: total }, (_, i) => ({ queue: q, ...work(`s-${i}`) })));
      await waitUntil(() => a.items.length + b.items.length >= total, "all messages handled");
      const all = [...a.items, ...b.items].sort();
      assert.equal(new Set(all).size, total, "no message handled twice");
      assert.equal(all.length, total);
    });

    test("stop() waits for in-flight handlers up to the grace, hands back the rest, and stops pulling", async () => {
      const q = uniqueQueue("stop");
      const started = new Recorder<Seen>();
      const quick = gate();
      const aborted = new Recorder<string>();
      const finished = new Recorder<string>();
      const c = await consume(q, { concurrency: 2, ackWaitMs: 30_000 }, async (d) => {
        started.push(seen(d));
        d.signal.addEventListener("abort", () => aborted.push(d.id));
        if (d.id === "quick") {
          await quick.promise;
          await d.ack();
          finished.push(d.id);
          return;
        }
        // "slow" ignores everything but its signal
        await new Promise<void>((resolve) => d.signal.addEventListener("abort", () => resolve()));
        finished.push(d.id);
        await d.ack(); // ignored: the delivery was handed back
      });
      await env.bus.publishWork(q, work("quick"));
      await env.bus.publishWork(q, work("slow"));
      await started.count(2, "started handlers");
      for (let i = 0; i < 3; i++) await env.bus.publishWork(q, work(`rest-${i}`));
      const stopped = c.stop({ graceMs: 700 });
      assert.equal(c.state, "draining");
      quick.open();
      await stopped;
      assert.equal(c.state, "stopped");
      assert.deepEqual(finished.items.slice(0, 1), ["quick"]);
      assert.deepEqual(aborted.items, ["slow"]);
      await finished.count(2, "both handlers returned");

      // Another consumer gets "slow" and the rest at once (handed back, not waiting for the 30 s ack wait).
      const t0 = Date.now();
      const later = new Recorder<Seen>();
      await consume(q, { concurrency: 4 }, async (d) => {
        later.push(seen(d));
        await d.ack();
      });
      await later.count(4, "redeliveries", 10_000);
      assert.ok(Date.now() - t0 < 10_000);
      assert.deepEqual(later.items.map((s) => s.id).sort(), ["rest-0", "rest-1", "rest-2", "slow"]);
      assert.equal(later.items.find((s) => s.id === "slow")!.deliveryCount, 2);
      await waitUntil(async () => (await env.pending(q)) === 0, "queue empty");
    });

    test("aborting the consumer's signal stops it", async () => {
      const q = uniqueQueue("abort");
      const ac = new AbortController();
      const started = new Recorder<string>();
      const c = await env.bus.consumeWork(q, { concurrency: 1, signal: ac.signal }, async (d) => {
        started.push(d.id);
        await new Promise<void>((resolve) => d.signal.addEventListener("abort", () => resolve()));
      });
      await env.bus.publishWork(q, work("a1"));
      await started.count(1, "started handlers");
      ac.abort();
      await waitUntil(() => c.state === "stopped", "consumer stopped");
      await c.stop({ graceMs: 0 }); // idempotent
    });

    test("invalid arguments are rejected with invalid_argument", async () => {
      const ac = new AbortController();
      const isInvalid = (err: unknown): boolean => err instanceof StacklError && err.code === ErrorCode.InvalidArgument;
      await assert.rejects(env.bus.publishWork("", work("x")), isInvalid);
      await assert.rejects(env.bus.publishWork("q", { id: "", dedupId: "d", data: new Uint8Array() }), isInvalid);
      await assert.rejects(env.bus.publishWork("x".repeat(500), work("x")), isInvalid);
      await assert.rejects(
        env.bus.consumeWork("q", { concurrency: 0, signal: ac.signal }, async () => {}),
        isInvalid,
      );
      await assert.rejects(
        env.bus.consumeWork("q", { concurrency: 1, maxDeliver: 0, signal: ac.signal }, async () => {}),
        isInvalid,
      );
      await assert.rejects(
        env.bus.consumeWork("q", { concurrency: 1, prefetch: 0, signal: ac.signal }, async () => {}),
        isInvalid,
      );
      await assert.rejects(
        env.bus.consumeWork("q", { concurrency: 1, ackWaitMs: 5, signal: ac.signal }, async () => {}),
        isInvalid,
      );
      assert.throws(() => env.bus.publish("a.*", new Uint8Array()), isInvalid);
      assert.throws(() => env.bus.publish("a..b", new Uint8Array()), isInvalid);
      assert.throws(() => env.bus.subscribe("a.>.b", () => {}), isInvalid);
      assert.throws(() => env.bus.subscribe("a b", () => {}), isInvalid);
    });

    test("queue names that differ only in punctuation are different queues", async () => {
      const base = randomUUID().slice(0, 8);
      const names = [`${base}.x`, `${base}_x`, `${base} x`, `${base}*x`, `${base}>x`, `${base}/x`, `${base}ü`];
      for (const n of names) await env.bus.publishWork(n, work(n));
      for (const n of names) assert.equal(await env.pending(n), 1, n);
      const got = new Recorder<string>();
      for (const n of names) {
        await consume(n, {}, async (d) => {
          assert.equal(d.queue, n);
          got.push(`${n}=${d.id}`);
          await d.ack();
        });
      }
      await got.count(names.length, "deliveries");
      assert.deepEqual([...got.items].sort(), names.map((n) => `${n}=${n}`).sort());
    });

    test("doorbells reach every replica listening, with * and > wildcards", async () => {
      const peer = await env.openPeer();
      const ns = `t${randomUUID().slice(0, 8)}`;
      const pools = new Recorder<BellMessage>();
      const cancels = new Recorder<BellMessage>();
      const exact = new Recorder<BellMessage>();
      const local = new Recorder<BellMessage>();
      const end = new Recorder<BellMessage>();
      const unsubs = [
        peer.subscribe(`${ns}.pool.*.jobs`, pools.push),
        peer.subscribe(`${ns}.cancel.>`, cancels.push),
        peer.subscribe(`${ns}.doc.changed`, exact.push),
        peer.subscribe(`${ns}.end`, end.push),
        env.bus.subscribe(`${ns}.pool.*.jobs`, local.push),
      ];
      await peer.flush();
      await env.bus.flush();
      const send = (s: string): void => env.bus.publish(`${ns}.${s}`, enc.encode(s));
      send("pool.p1.jobs");
      send("pool.p1.other");
      send("pool.p1.x.jobs");
      send("cancel");
      send("cancel.job.J1");
      send("cancel.task.T9");
      send("doc.changed");
      send("doc.changed.more");
      send("pool.p2.jobs");
      send("end");
      await env.bus.flush();
      await end.count(1, "the end marker");
      await pools.count(2, "pool bells");
      await local.count(2, "local pool bells");
      const text = (r: Recorder<BellMessage>): string[] => r.items.map((m) => `${m.subject}=${dec.decode(m.data)}`);
      assert.deepEqual(text(pools), [`${ns}.pool.p1.jobs=pool.p1.jobs`, `${ns}.pool.p2.jobs=pool.p2.jobs`]);
      assert.deepEqual(text(cancels), [`${ns}.cancel.job.J1=cancel.job.J1`, `${ns}.cancel.task.T9=cancel.task.T9`]);
      assert.deepEqual(text(exact), [`${ns}.doc.changed=doc.changed`]);
      assert.deepEqual(text(local), text(pools));

      // After unsubscribing, nothing more arrives there (the end marker, still subscribed, proves the order).
      unsubs[0]!();
      await peer.flush();
      send("pool.p3.jobs");
      send("end");
      await env.bus.flush();
      await end.count(2, "the second end marker");
      await local.count(3, "local pool bells");
      assert.equal(pools.items.length, 2);
      for (const u of unsubs) u();
    });

    test("a throwing doorbell handler does not break the subscription", async () => {
      const ns = `t${randomUUID().slice(0, 8)}`;
      const got = new Recorder<string>();
      const unsub = env.bus.subscribe(`${ns}.x`, (m) => {
        got.push(dec.decode(m.data));
        if (got.items.length === 1) throw new Error("handler bug");
        return Promise.reject(new Error("async handler bug"));
      });
      await env.bus.flush();
      env.bus.publish(`${ns}.x`, enc.encode("1"));
      env.bus.publish(`${ns}.x`, enc.encode("2"));
      env.bus.publish(`${ns}.x`, enc.encode("3"));
      await got.count(3, "bells");
      unsub();
    });

    test("ready() is true while open; a closed bus is not ready and refuses work", async () => {
      assert.equal(await env.bus.ready(), true);
      const peer = await env.openPeer();
      if (peer === env.bus) return; // the in-process bus has one instance; its close is tested on its own
      assert.equal(await peer.ready(), true);
      await peer.close();
      await peer.close();
      assert.equal(await peer.ready(), false);
      const unavailable = (err: unknown): boolean => err instanceof StacklError && err.code === ErrorCode.Unavailable;
      await assert.rejects(peer.publishWork("q", work("x")), unavailable);
      assert.throws(() => peer.publish("a", new Uint8Array()), unavailable);
    });
  });
}
