import assert from "node:assert/strict";
import { test } from "node:test";
import { Deadline } from "../../../src/store/deadline.js";
import { StoreTimeoutError } from "../../../src/store/errors.js";
import { Mutex } from "../../../src/store/mutex.js";

const forever = (): Deadline => Deadline.of(undefined, 60_000, "test");

test("grants the lock in FIFO order, one holder at a time", async () => {
  const m = new Mutex();
  const order: number[] = [];
  let inside = 0;
  await Promise.all(
    [1, 2, 3, 4].map((i) =>
      m.run(forever(), async () => {
        inside++;
        assert.equal(inside, 1);
        order.push(i);
        await Promise.resolve();
        inside--;
      }),
    ),
  );
  assert.deepEqual(order, [1, 2, 3, 4]);
  assert.equal(m.locked, false);
});

test("a waiter whose deadline ends leaves the queue; the lock still passes on", async () => {
  const m = new Mutex();
  const release = await m.acquire(forever());
  const timedOut = m.acquire(Deadline.of({ timeoutMs: 10 }, 60_000, "waiter"));
  const next = m.acquire(forever());
  await assert.rejects(timedOut, StoreTimeoutError);
  release();
  const releaseNext = await next;
  assert.equal(m.locked, true);
  releaseNext();
  releaseNext(); // idempotent
  assert.equal(m.locked, false);
});
