// PGlite adapter: the shared Db contract in memory, plus what only PGlite has (data-dir lock, reopen, the
// single-connection re-entrancy guard).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Db } from "../../../src/store/db.js";
import { DataDirLockedError, StoreClosedError, StoreQueryError } from "../../../src/store/errors.js";
import { openDb } from "../../../src/store/open-db.js";
import { dbContract } from "../../support/db-contract.js";

dbContract("PGlite in memory", () => openDb({ memory: true }));

describe("PGlite on a data directory", () => {
  let root: string;
  let dataDir: string;
  let db: Db | undefined;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "stackl-pglite-"));
    dataDir = join(root, "data");
  });

  after(async () => {
    await db?.close();
    await rm(root, { recursive: true, force: true });
  });

  test("opens, migrates, and writes a lock file next to the data directory naming this process", async () => {
    db = await openDb({ dataDir });
    assert.equal(db.kind, "pglite");
    const lock = JSON.parse(readFileSync(`${dataDir}.lock`, "utf8")) as { pid: number };
    assert.equal(lock.pid, process.pid);
    await db.query("INSERT INTO stackl_meta (key, value) VALUES ('persisted', 'yes')");
  });

  test("a second opener of the same data directory is refused with a clear error", async () => {
    await assert.rejects(openDb({ dataDir }), (err: unknown) => {
      assert.ok(err instanceof DataDirLockedError);
      assert.equal(err.pid, process.pid);
      assert.equal(err.dataDir, dataDir);
      assert.match(
        err.message,
        new RegExp(`${dataDir.replaceAll("/", "\\/")} is already open in process ${process.pid}`),
      );
      return true;
    });
    // the first handle is unaffected
    assert.equal(await db?.ready(), true);
  });

  test("close checkpoints, releases the lock, and refuses further calls", async () => {
    const closing = db;
    assert.ok(closing);
    await closing.close();
    await closing.close(); // idempotent
    assert.equal(existsSync(`${dataDir}.lock`), false);
    await assert.rejects(closing.query("SELECT 1"), StoreClosedError);
    assert.equal(await closing.ready(), false);
    db = undefined;
  });

  test("reopening after close finds the data and does not re-apply migrations", async () => {
    db = await openDb({ dataDir });
    const { rows } = await db.query("SELECT value FROM stackl_meta WHERE key = 'persisted'");
    assert.deepEqual(rows, [{ value: "yes" }]);
    const applied = await db.query<{ n: number }>("SELECT count(*) AS n FROM schema_migrations WHERE version = 1");
    assert.deepEqual(applied.rows, [{ n: 1 }]);
  });

  test("db.query inside its own tx callback is rejected instead of deadlocking", async () => {
    const open = db;
    assert.ok(open);
    await assert.rejects(
      open.tx(async () => {
        await open.query("SELECT 1");
      }),
      (err: unknown) => err instanceof StoreQueryError && /inside its own transaction/.test(err.message),
    );
    // work started from the callback but run after the tx ended is not affected
    let later: Promise<unknown> | undefined;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    await open.tx(async () => {
      later = gate.then(() => open.query("SELECT 1 AS one"));
    });
    release();
    assert.deepEqual(((await later) as { rows: unknown[] }).rows, [{ one: 1 }]);
  });
});
