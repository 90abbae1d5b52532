import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  AUTH_RETRY_JITTER,
  authRetryDelay,
  BACKOFF_BASE_MS,
  BACKOFF_CAP_MS,
  backoffCeiling,
  backoffDelay,
  DEFAULT_BACKOFF,
} from "../../../agent/src/backoff.js";

describe("reconnect backoff", () => {
  test("named defaults: 250 ms base, 30 s cap, full jitter", () => {
    assert.equal(BACKOFF_BASE_MS, 250);
    assert.equal(BACKOFF_CAP_MS, 30_000);
    assert.equal(DEFAULT_BACKOFF.jitter, 1);
  });

  test("the ceiling doubles from the base up to the cap", () => {
    const ceilings = Array.from({ length: 10 }, (_, n) => backoffCeiling(n, DEFAULT_BACKOFF));
    assert.deepEqual(ceilings, [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.equal(backoffCeiling(10_000, DEFAULT_BACKOFF), 30_000);
  });

  test("full jitter: every delay lies in [0, ceiling], and the extremes are reachable", () => {
    for (let n = 0; n < 12; n++) {
      const ceiling = backoffCeiling(n, DEFAULT_BACKOFF);
      assert.equal(
        backoffDelay(n, DEFAULT_BACKOFF, () => 0),
        ceiling,
      );
      assert.equal(
        backoffDelay(n, DEFAULT_BACKOFF, () => 0.999999),
        Math.round(ceiling * 0.000001),
      );
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(n, DEFAULT_BACKOFF);
        assert.ok(d >= 0 && d <= ceiling, `attempt ${n}: ${d} outside [0, ${ceiling}]`);
      }
    }
  });

  test("partial jitter keeps the lower bound", () => {
    const policy = { baseMs: 100, capMs: 1_000, jitter: 0.25 };
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(3, policy);
      assert.ok(d >= 600 && d <= 800, `${d}`);
    }
  });

  test("after an authentication failure the agent waits about the cap, never less than half of it", () => {
    for (let i = 0; i < 200; i++) {
      const d = authRetryDelay(DEFAULT_BACKOFF);
      assert.ok(d >= BACKOFF_CAP_MS * (1 - AUTH_RETRY_JITTER) && d <= BACKOFF_CAP_MS, `${d}`);
    }
  });
});
