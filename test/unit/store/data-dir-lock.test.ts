import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { acquireDataDirLock } from "../../../src/store/data-dir-lock.js";
import { DataDirLockedError } from "../../../src/store/errors.js";

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), "stackl-lock-"));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function startTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
}

async function writeLock(dir: string, pid: number, ticks: number | null): Promise<void> {
  const record = { pid, startTicks: ticks, hostname: hostname(), token: `t-${pid}-${ticks}`, createdAt: "" };
  await writeFile(`${dir}.lock`, JSON.stringify(record));
}

function lockPid(dir: string): number {
  return (JSON.parse(readFileSync(`${dir}.lock`, "utf8")) as { pid: number }).pid;
}

/** A child process that stays alive until killed. */
async function liveChild(): Promise<ChildProcess & { pid: number }> {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 60000)"], { stdio: "ignore" });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  return child as ChildProcess & { pid: number };
}

test("one holder per process; release removes the file; re-acquire works", async () => {
  const dir = join(root, "a");
  const lock = await acquireDataDirLock(dir);
  assert.equal(lockPid(dir), process.pid);
  await assert.rejects(acquireDataDirLock(dir), (err: unknown) => {
    assert.ok(err instanceof DataDirLockedError);
    assert.equal(err.pid, process.pid);
    assert.match(err.message, /already open in process/);
    assert.ok(err.message.includes(dir));
    return true;
  });
  await lock.release();
  await lock.release();
  assert.equal(existsSync(`${dir}.lock`), false);
  const again = await acquireDataDirLock(dir);
  await again.release();
});

test("concurrent acquirers in one process: exactly one wins", async () => {
  const dir = join(root, "b");
  const results = await Promise.allSettled([acquireDataDirLock(dir), acquireDataDirLock(dir), acquireDataDirLock(dir)]);
  const won = results.filter((r) => r.status === "fulfilled");
  assert.equal(won.length, 1);
  for (const r of results) if (r.status === "rejected") assert.ok(r.reason instanceof DataDirLockedError);
  await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireDataDirLock>>>).value.release();
});

test("a live process holding the lock is named in the error", async () => {
  const dir = join(root, "c");
  const child = await liveChild();
  try {
    await writeLock(dir, child.pid, startTicks(child.pid));
    await assert.rejects(acquireDataDirLock(dir), (err: unknown) => {
      assert.ok(err instanceof DataDirLockedError);
      assert.equal(err.pid, child.pid);
      assert.ok(err.message.includes(`process ${child.pid}`));
      return true;
    });
    assert.equal(lockPid(dir), child.pid, "the live owner's lock is untouched");

    // same PID but a different start time: the PID was reused, the lock is stale
    await writeLock(dir, child.pid, startTicks(child.pid) - 1);
    const lock = await acquireDataDirLock(dir);
    assert.equal(lockPid(dir), process.pid);
    await lock.release();
  } finally {
    child.kill("SIGKILL");
  }
});

test("a lock left by a dead process, by an earlier incarnation of this PID, or damaged is taken over", async () => {
  const dead = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  const deadPid = dead.pid ?? 0;
  await new Promise((resolve) => dead.once("exit", resolve));

  for (const [name, write] of [
    ["dead", () => writeLock(join(root, "dead"), deadPid, null)],
    ["self", () => writeLock(join(root, "self"), process.pid, null)],
    ["damaged", () => writeFile(`${join(root, "damaged")}.lock`, "{not json")],
  ] as const) {
    const dir = join(root, name);
    await write();
    const lock = await acquireDataDirLock(dir);
    assert.equal(lockPid(dir), process.pid, name);
    await lock.release();
  }
});
