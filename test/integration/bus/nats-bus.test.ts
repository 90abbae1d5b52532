// The JetStream adapter against a real nats-server (the pinned build; `scripts/tools.sh nats`): the shared
// contract, then what only NATS can show — store loss and server restarts under a running consumer.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pino from "pino";
import type { WorkConsumer, WorkDelivery } from "../../../src/bus/bus.js";
import { NatsBus } from "../../../src/bus/nats-bus.js";
import { openBus } from "../../../src/bus/open-bus.js";
import { queueToken } from "../../../src/bus/queue-name.js";
import { busContract, Recorder, uniqueQueue, waitMs, waitUntil, work } from "../../support/bus-contract.js";
import { type NatsServer, startNats } from "../../support/nats.js";

const logger = pino({ level: process.env.STACKL_TEST_LOG ?? "silent" });
const STREAM = "STACKL_WORK";

/** Messages the stream holds on the queue's subject (work-queue retention: not yet acked or terminated). */
async function streamPending(url: string, queue: string): Promise<number> {
  const nc = await connect({ servers: url, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc);
    const subject = `stackl.work.${queueToken(queue)}`;
    try {
      const info = await jsm.streams.info(STREAM, { subjects_filter: subject });
      return info.state.subjects?.[subject] ?? 0;
    } catch (err) {
      if (err instanceof Error && err.message === "stream not found") return 0;
      throw err;
    }
  } finally {
    await nc.close();
  }
}

describe("NatsBus", () => {
  let server: NatsServer;
  before(async () => {
    server = await startNats();
  });
  after(async () => {
    await server?.stop();
  });

  busContract("nats", async () => {
    const peers: NatsBus[] = [];
    const open = async (): Promise<NatsBus> => {
      const b = await NatsBus.connect({ url: server.url, logger, signal: AbortSignal.timeout(waitMs) });
      peers.push(b);
      return b;
    };
    const bus = await open();
    return {
      bus,
      openPeer: open,
      pending: (queue) => streamPending(server.url, queue),
      close: async () => {
        await Promise.all(peers.map((p) => p.close()));
      },
    };
  });

  test("openBus picks NATS for a URL and the in-process bus without one", async () => {
    const ac = new AbortController();
    const nats = await openBus({ url: server.url, logger, signal: ac.signal });
    const memory = await openBus({ logger, signal: ac.signal });
    try {
      assert.equal(nats.kind, "nats");
      assert.equal(memory.kind, "memory");
      assert.equal(await nats.ready(), true);
    } finally {
      await nats.close();
      await memory.close();
    }
  });

  test("the stream is declared as a work queue with the configured duplicate window", async () => {
    const bus = await NatsBus.connect({ url: server.url, logger, duplicateWindowMs: 90_000 });
    try {
      await bus.publishWork(uniqueQueue("decl"), work("d"));
      const nc = await connect({ servers: server.url, reconnect: false });
      try {
        const jsm = await jetstreamManager(nc);
        const info = await jsm.streams.info(STREAM);
        assert.equal(info.config.retention, "workqueue");
        assert.deepEqual(info.config.subjects, ["stackl.work.>"]);
        assert.equal(info.config.duplicate_window, 90_000 * 1_000_000);
      } finally {
        await nc.close();
      }
    } finally {
      await bus.close();
    }
  });

  test("connecting gives up when the signal aborts (nobody listening)", async () => {
    const t0 = Date.now();
    await assert.rejects(
      NatsBus.connect({ url: "nats://127.0.0.1:1", logger, signal: AbortSignal.timeout(800) }),
      (err: unknown) => err instanceof Error && /connect to NATS/.test(err.message),
    );
    assert.ok(Date.now() - t0 < 5_000);
  });
});

/**
 * Restart scenarios get a server of their own: they stop it, and the contract suite must not see that.
 * One consumer is started once and must survive everything.
 */
describe("NatsBus across server restarts", () => {
  let server: NatsServer;
  let bus: NatsBus;
  let consumer: WorkConsumer;
  const ac = new AbortController();
  const queue = uniqueQueue("restart");
  const acked = new Recorder<string>();

  before(async () => {
    server = await startNats();
    bus = await NatsBus.connect({ url: server.url, logger, requestTimeoutMs: 2_000 });
    consumer = await bus.consumeWork(queue, { concurrency: 4, signal: ac.signal }, async (d: WorkDelivery) => {
      await d.ack();
      acked.push(d.id);
    });
  });
  after(async () => {
    ac.abort();
    await consumer?.stop({ graceMs: 0 });
    await bus?.close();
    await server?.stop();
  });

  /** Publishes until the bus accepts (the server may still be coming up); bounded. */
  async function publishEventually(id: string): Promise<void> {
    const m = work(id);
    await waitUntil(async () => {
      try {
        await bus.publishWork(queue, m, { signal: AbortSignal.timeout(3_000) });
        return true;
      } catch {
        return false;
      }
    }, `publish of ${id} accepted`);
  }

  test("consumes before any restart", async () => {
    await bus.publishWork(queue, work("before"));
    await acked.waitFor((ids) => ids.includes("before"), "'before' consumed");
    assert.equal(consumer.state, "running");
  });

  test("server restart with its store: the same consumer resumes", async () => {
    const pidBefore = server.pid;
    await server.stop();
    await server.start();
    assert.notEqual(server.pid, pidBefore);
    await publishEventually("after-restart");
    await acked.waitFor((ids) => ids.includes("after-restart"), "'after-restart' consumed by the same consumer");
    assert.equal(consumer.state, "running");
  });

  test("server killed (SIGKILL) and restarted: the same consumer resumes", async () => {
    await server.kill();
    await server.start();
    await publishEventually("after-kill");
    await acked.waitFor((ids) => ids.includes("after-kill"), "'after-kill' consumed by the same consumer");
  });

  test("store deleted: stream and consumer are declared again and the same consumer resumes", async () => {
    await server.stop();
    rmSync(server.storeDir, { recursive: true, force: true });
    await server.start();
    // A fresh store: no stream at all until someone declares it.
    assert.equal(await streamPending(server.url, queue), 0);
    await publishEventually("after-wipe");
    await acked.waitFor((ids) => ids.includes("after-wipe"), "'after-wipe' consumed by the same consumer");
    assert.equal(consumer.state, "running");
    // More than a lucky one: a burst goes through too, and the stream is drained again.
    const outcomes = await bus.publishWorkBatch(
      Array.from({ length: 20 }, (_, i) => ({ queue, ...work(`burst-${i}`) })),
    );
    assert.ok(outcomes.every((o) => o.ok));
    await acked.waitFor((ids) => ids.filter((id) => id.startsWith("burst-")).length === 20, "the burst consumed");
    await waitUntil(async () => (await streamPending(server.url, queue)) === 0, "stream drained");
  });

  test("store deleted while publishes come from another replica: the consumer re-declares on its own", async () => {
    await server.stop();
    rmSync(server.storeDir, { recursive: true, force: true });
    await server.start();
    // The other replica declares the stream (but not our consumer) by publishing; our consumer must notice that
    // its consumer is gone and declare it again.
    const other = await NatsBus.connect({ url: server.url, logger });
    try {
      await other.publishWork(queue, work("from-other"));
      await acked.waitFor((ids) => ids.includes("from-other"), "'from-other' consumed by the same consumer");
    } finally {
      await other.close();
    }
  });

  test("consumer deleted by an operator while connected: it is declared again", async () => {
    const nc = await connect({ servers: server.url, reconnect: false });
    try {
      const jsm = await jetstreamManager(nc);
      assert.equal(await jsm.consumers.delete(STREAM, `pool-${queueToken(queue)}`), true);
    } finally {
      await nc.close();
    }
    await bus.publishWork(queue, work("after-consumer-delete"));
    await acked.waitFor((ids) => ids.includes("after-consumer-delete"), "'after-consumer-delete' consumed");
  });

  test("stream deleted by an operator while connected: both sides declare again", async () => {
    const nc = await connect({ servers: server.url, reconnect: false });
    try {
      const jsm = await jetstreamManager(nc);
      assert.equal(await jsm.streams.delete(STREAM), true);
    } finally {
      await nc.close();
    }
    await publishEventually("after-stream-delete");
    await acked.waitFor((ids) => ids.includes("after-stream-delete"), "'after-stream-delete' consumed");
  });

  test("the consumer was never restarted by the caller and is still running", () => {
    assert.equal(consumer.state, "running");
    assert.ok(acked.items.length >= 27);
  });
});

describe("NatsBus while the server is away", () => {
  let server: NatsServer;
  before(async () => {
    server = await startNats();
  });
  after(async () => {
    await server?.stop();
  });

  test("a bus that only publishes declares the lost stream again on its next publish", async () => {
    const pub = await NatsBus.connect({ url: server.url, logger, requestTimeoutMs: 2_000 });
    const queue = uniqueQueue("pub-only");
    try {
      await pub.publishWork(queue, work("one"));
      assert.equal(await streamPending(server.url, queue), 1);
      await server.stop();
      rmSync(server.storeDir, { recursive: true, force: true });
      await server.start();
      assert.equal(await streamPending(server.url, queue), 0);
      // Nobody else declares anything here: only the publisher's own recovery can make this succeed.
      const m = work("two");
      await waitUntil(async () => {
        try {
          await pub.publishWork(queue, m, { signal: AbortSignal.timeout(3_000) });
          return true;
        } catch {
          return false;
        }
      }, "publish accepted after the store loss");
      assert.equal(await streamPending(server.url, queue), 1);
      assert.equal(await pub.ready(), true);
    } finally {
      await pub.close();
    }
  });

  test("a consumer started while the server is down attaches once it is back", async () => {
    const bus = await NatsBus.connect({ url: server.url, logger, requestTimeoutMs: 1_000 });
    const ac = new AbortController();
    const queue = uniqueQueue("late-server");
    const acked = new Recorder<string>();
    try {
      await server.stop();
      const consumer = await bus.consumeWork(queue, { concurrency: 2, signal: ac.signal }, async (d) => {
        await d.ack();
        acked.push(d.id);
      });
      assert.equal(consumer.state, "starting");
      assert.equal(await bus.ready(), false);
      await server.start();
      await waitUntil(() => consumer.state === "running", "consumer attached");
      await bus.publishWork(queue, work("late"));
      await acked.waitFor((ids) => ids.includes("late"), "'late' consumed");
      assert.equal(await bus.ready(), true);
    } finally {
      ac.abort();
      await bus.close();
    }
  });
});
