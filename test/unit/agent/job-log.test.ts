import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { JobLog } from "../../../agent/src/job-log.js";
import { LogStream } from "../../../gen/stackl/v1/jobs_pb.js";

const b = (s: string): Buffer => Buffer.from(s);

function drain(log: JobLog): { seq: number; text: string }[] {
  const out: { seq: number; text: string }[] = [];
  for (let c = log.takeUnsent(); c; c = log.takeUnsent())
    out.push({ seq: Number(c.seq), text: Buffer.from(c.data).toString() });
  return out;
}

describe("JobLog", () => {
  test("numbers chunks from 1 (or the offer's seq) and merges unsent writes of one stream", () => {
    const log = new JobLog("j", 1n, 0n);
    log.append(LogStream.STDOUT, b("a"));
    log.append(LogStream.STDOUT, b("b"));
    log.append(LogStream.STDERR, b("c"));
    assert.deepEqual(drain(log), [
      { seq: 1, text: "ab" },
      { seq: 2, text: "c" },
    ]);
    log.append(LogStream.STDERR, b("d")); // chunk 2 was sent: frozen
    assert.deepEqual(drain(log), [{ seq: 3, text: "d" }]);
    assert.equal(new JobLog("j", 1n, 7n).nextSeq, 7n);
  });

  test("splits large writes into chunks of at most maxChunkBytes", () => {
    const log = new JobLog("j", 1n, 1n, { maxChunkBytes: 4 });
    log.append(LogStream.STDOUT, b("0123456789"));
    assert.deepEqual(
      drain(log).map((c) => c.text),
      ["0123", "4567", "89"],
    );
    assert.equal(log.lastSeq, 3n);
  });

  test("acks drop chunks; a rewind resends everything unacked, from the server's next seq", () => {
    const log = new JobLog("j", 1n, 1n, { maxChunkBytes: 1 });
    log.append(LogStream.STDOUT, b("abcde"));
    assert.equal(drain(log).length, 5);
    log.ack(2n);
    assert.equal(log.firstUnackedSeq, 3n);
    assert.equal(log.rewind(0n), false);
    assert.deepEqual(
      drain(log).map((c) => c.seq),
      [3, 4, 5],
    );
    // The server persisted 3 and 4 but the acks were lost.
    assert.equal(log.rewind(5n), false);
    assert.deepEqual(
      drain(log).map((c) => c.seq),
      [5],
    );
    log.ack(5n);
    assert.ok(log.allAcked);
    // Nothing held: a server ahead of us sets the numbering (agent restart).
    assert.equal(log.rewind(9n), false);
    assert.equal(log.nextSeq, 9n);
    // ... and when the server has less than the agent thought, numbering follows the server (no gap on its side).
    assert.equal(log.rewind(7n), true);
    assert.equal(log.nextSeq, 7n);
  });

  test("reports a gap when the server wants chunks that were already dropped", () => {
    const log = new JobLog("j", 1n, 1n, { maxChunkBytes: 1 });
    log.append(LogStream.STDOUT, b("abc"));
    drain(log);
    log.ack(2n);
    assert.equal(log.rewind(2n), true);
  });

  test("is bounded: full at maxBytes, writers wait until an ack frees space", async () => {
    const log = new JobLog("j", 1n, 1n, { maxBytes: 8, maxChunkBytes: 4 });
    log.append(LogStream.STDOUT, b("12345678"));
    assert.ok(log.full);
    let released = false;
    const wait = log.waitForSpace().then(() => {
      released = true;
    });
    await Promise.resolve();
    assert.equal(released, false);
    drain(log);
    log.ack(1n);
    await wait;
    assert.equal(released, true);
    assert.equal(log.bufferedBytes, 4);
  });

  test("dispose releases waiting writers", async () => {
    const log = new JobLog("j", 1n, 1n, { maxBytes: 1 });
    log.append(LogStream.STDOUT, b("xx"));
    const wait = log.waitForSpace();
    log.dispose();
    await wait;
    assert.equal(log.bufferedBytes, 0);
  });
});
