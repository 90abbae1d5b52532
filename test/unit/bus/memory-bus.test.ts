// The in-process bus: the shared contract, plus what only it promises (no timers survive close()).
import assert from "node:assert/strict";
import { test } from "node:test";
import pino from "pino";
import { MemoryBus } from "../../../src/bus/memory-bus.js";
import { busContract, gate, Recorder, uniqueQueue, work } from "../../support/bus-contract.js";

const logger = pino({ level: process.env.STACKL_TEST_LOG ?? "silent" });

busContract("memory", async () => {
  const bus = new MemoryBus({ logger });
  return {
    bus,
    openPeer: async () => bus,
    pending: async (queue) => bus.pending(queue),
    close: () => bus.close(),
  };
});

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
}

test("memory bus: close() leaves no timer running and refuses further use", async () => {
  const before = timers();
  const bus = new MemoryBus({ logger });
  const q = uniqueQueue("close");
  const started = new Recorder<string>();
  const hold = gate();
  const ac = new AbortController();
  await bus.consumeWork(q, { concurrency: 2, signal: ac.signal, ackWaitMs: 60_000 }, async (d) => {
    started.push(d.id);
    if (d.id === "naked") {
      d.nak(60_000); // a pending nak-delay timer
      return;
    }
    await hold.promise; // an in-flight delivery: ack-wait timer + working() ticker
  });
  await bus.publishWork(q, work("naked"));
  await bus.publishWork(q, work("held"));
  await bus.publishWork(q, work("waiting"));
  await started.count(2, "started handlers");
  assert.ok(timers() > before, "timers are running while work is in flight");
  await bus.close();
  assert.equal(timers(), before, "no timer left after close()");
  assert.equal(await bus.ready(), false);
  await assert.rejects(bus.publishWork(q, work("late")), /bus is closed/);
  await assert.rejects(
    bus.consumeWork(q, { concurrency: 1, signal: ac.signal }, async () => {}),
    /bus is closed/,
  );
  assert.throws(() => bus.subscribe("a", () => {}), /bus is closed/);
  hold.open();
});

test("memory bus: the dedup window expires", async () => {
  const bus = new MemoryBus({ logger, duplicateWindowMs: 50 });
  const q = uniqueQueue("window");
  const m = work("w");
  assert.deepEqual(await bus.publishWork(q, m), { duplicate: false });
  assert.deepEqual(await bus.publishWork(q, m), { duplicate: true });
  const deadline = Date.now() + 5_000;
  let r = { duplicate: true };
  while (r.duplicate && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    r = await bus.publishWork(q, m);
  }
  assert.deepEqual(r, { duplicate: false });
  assert.equal(bus.pending(q), 2);
  await bus.close();
});
