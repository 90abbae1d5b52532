import assert from "node:assert/strict";
import { test } from "node:test";
import { Deadline } from "../../../src/store/deadline.js";
import { StoreAbortedError, StoreTimeoutError } from "../../../src/store/errors.js";

const never = new Promise<never>(() => {});

test("race rejects with StoreTimeoutError at the deadline and calls onExpire once", async () => {
  const d = Deadline.of({ timeoutMs: 20 }, 1000, "test call");
  let expired = 0;
  await assert.rejects(
    d.race(never, () => expired++),
    (err: unknown) => err instanceof StoreTimeoutError && /test call exceeded its deadline/.test(err.message),
  );
  assert.equal(expired, 1);
  assert.equal(d.done, true);
  assert.throws(() => d.check(), StoreTimeoutError);
});

test("an abort wins and carries the signal's reason", async () => {
  const ac = new AbortController();
  const d = Deadline.of({ signal: ac.signal }, 60_000, "call");
  const raced = d.race(never);
  const reason = new Error("client went away");
  ac.abort(reason);
  await assert.rejects(raced, (err: unknown) => err instanceof StoreAbortedError && err.cause === reason);
});

test("race passes results and errors through and cleans up its timer", async () => {
  const d = Deadline.of(undefined, 60_000, "call");
  assert.equal(await d.race(Promise.resolve(7)), 7);
  await assert.rejects(d.race(Promise.reject(new Error("x"))), /x/);
});

test("within() takes the narrower deadline and both signals", async () => {
  const outer = Deadline.of({ timeoutMs: 60_000 }, 1000, "tx");
  const inner = outer.within({ timeoutMs: 10 }, "stmt");
  assert.ok(inner.expiresAt < outer.expiresAt);
  await assert.rejects(inner.race(never), StoreTimeoutError);
  const ac = new AbortController();
  const viaParent = Deadline.of({ signal: ac.signal }, 60_000, "tx").within(undefined, "stmt");
  ac.abort();
  assert.throws(() => viaParent.check(), StoreAbortedError);
});

test("timeoutMs must be positive; Infinity means no deadline", () => {
  assert.throws(() => Deadline.of({ timeoutMs: 0 }, 1000, "x"), RangeError);
  const d = Deadline.of({ timeoutMs: Infinity }, 1000, "x");
  assert.equal(d.remainingMs(), Infinity);
  assert.equal(d.done, false);
});
