/**
 * An exclusive lock on a PGlite data directory: a lock file next to it (`<dataDir>.lock`), created exclusively
 * (hard link of a fully written temp file, which fails with EEXIST like O_EXCL), holding the owner's PID. PGlite has no lock of its own and two processes on one data directory corrupt it
 * (pglite#1106). A lock whose owner is gone (PID not alive, or alive but started after the lock was written, i.e. a
 * reused PID) is stale and taken over. Within one process a second opener is refused too.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { link, mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, resolve } from "node:path";
import { DataDirLockedError } from "./errors.js";

/** Contents of the lock file. */
interface LockRecord {
  pid: number;
  /** Process start time in clock ticks since boot (Linux `/proc/<pid>/stat` field 22); detects reused PIDs. */
  startTicks: number | null;
  hostname: string;
  token: string;
  createdAt: string;
}

export interface DataDirLock {
  readonly lockPath: string;
  /** Remove the lock file (only if it is still ours). Idempotent. */
  release(): Promise<void>;
}

/** Lock files held by this process, so a second open in the same process is refused even though our PID is alive. */
const heldByThisProcess = new Set<string>();
/** Tokens of locks this process holds or is creating right now (a lock file with our PID but another token is stale). */
const ownTokens = new Set<string>();

/** A takeover marker older than this is left over from a crash during takeover. */
const takeoverStaleMs = 10_000;
/** Attempts at create-or-take-over before giving up (each loses only to a concurrent opener). */
const maxAttempts = 5;

/** Take the lock on `dataDir` or throw `DataDirLockedError` naming the directory and the owning PID. */
export async function acquireDataDirLock(dataDir: string): Promise<DataDirLock> {
  const dir = resolve(dataDir);
  const lockPath = `${dir}.lock`;
  if (heldByThisProcess.has(lockPath)) throw new DataDirLockedError(dir, process.pid, lockPath);
  await mkdir(dirname(lockPath), { recursive: true });

  const record: LockRecord = {
    pid: process.pid,
    startTicks: processStartTicks(process.pid),
    hostname: hostname(),
    token: randomUUID(),
    createdAt: new Date().toISOString(),
  };

  ownTokens.add(record.token);
  try {
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      if (await tryCreate(lockPath, record)) {
        heldByThisProcess.add(lockPath);
        return makeLock(lockPath, record.token);
      }
      const existing = await readRecord(lockPath);
      if (existing === undefined) continue; // vanished meanwhile: try again
      if (isAlive(existing)) throw new DataDirLockedError(dir, existing.pid, lockPath);
      await takeOverStale(lockPath, existing);
    }
    const existing = await readRecord(lockPath);
    throw new DataDirLockedError(dir, existing?.pid ?? -1, lockPath);
  } catch (err) {
    ownTokens.delete(record.token);
    throw err;
  }
}

function makeLock(lockPath: string, token: string): DataDirLock {
  let released = false;
  return {
    lockPath,
    async release() {
      if (released) return;
      released = true;
      const current = await readRecord(lockPath);
      if (current?.token === token) await rm(lockPath, { force: true });
      heldByThisProcess.delete(lockPath);
      ownTokens.delete(token);
    },
  };
}

/**
 * Create the lock file with its full contents atomically: write a private temp file, then hard-link it into place
 * (link fails with EEXIST like O_EXCL, and a reader never sees a half-written lock).
 */
async function tryCreate(lockPath: string, record: LockRecord): Promise<boolean> {
  const temp = `${lockPath}.${record.token}.tmp`;
  const handle = await open(temp, "wx", 0o644);
  try {
    await handle.writeFile(`${JSON.stringify(record)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(temp, lockPath);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    await rm(temp, { force: true });
  }
}

async function readRecord(lockPath: string): Promise<LockRecord | undefined> {
  let text: string;
  try {
    text = await readFile(lockPath, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as Partial<LockRecord>;
    if (typeof parsed.pid !== "number" || typeof parsed.token !== "string") return undefined;
    return {
      pid: parsed.pid,
      startTicks: typeof parsed.startTicks === "number" ? parsed.startTicks : null,
      hostname: typeof parsed.hostname === "string" ? parsed.hostname : "",
      token: parsed.token,
      createdAt: typeof parsed.createdAt === "string" ? parsed.createdAt : "",
    };
  } catch {
    // Lock files are written atomically, so an unparsable one is damaged: treat it as stale.
    return { pid: 0, startTicks: null, hostname: "", token: `unparsable:${text}`, createdAt: "" };
  }
}

/** Whether the process that wrote `record` still runs. */
function isAlive(record: LockRecord): boolean {
  if (record.pid <= 0) return false;
  if (record.hostname !== "" && record.hostname !== hostname()) return true; // cannot check: assume alive
  if (ownTokens.has(record.token)) return true; // held (or being taken) by this process
  if (record.pid === process.pid) {
    // Our PID but not our token: left by a previous incarnation (e.g. a container restart reusing the PID).
    return false;
  }
  try {
    process.kill(record.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const ticks = processStartTicks(record.pid);
  return record.startTicks === null || ticks === null || ticks === record.startTicks;
}

/**
 * Replace a stale lock. A short-lived takeover marker (also O_EXCL) makes sure two processes that both saw the same
 * stale lock do not delete each other's fresh one.
 */
async function takeOverStale(lockPath: string, stale: LockRecord): Promise<void> {
  const marker = `${lockPath}.takeover`;
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(marker, "wx", 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const age = await stat(marker).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > takeoverStaleMs) await rm(marker, { force: true });
    return; // someone else is taking over; the caller re-checks
  }
  try {
    await handle.close();
    const current = await readRecord(lockPath);
    if (current?.token === stale.token) {
      // rename first so a reader never sees a missing-then-recreated file with the old content
      const aside = `${lockPath}.stale-${process.pid}-${Date.now()}`;
      await rename(lockPath, aside);
      await rm(aside, { force: true });
    }
  } finally {
    await rm(marker, { force: true });
  }
}

/** Start time of `pid` in clock ticks since boot, or null where /proc is unavailable. */
function processStartTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[19]); // field 22 overall = index 19 after pid and comm
    return Number.isFinite(ticks) ? ticks : null;
  } catch {
    return null;
  }
}
