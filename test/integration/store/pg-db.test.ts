// `pg` adapter against a real PostgreSQL 15 (test/support/postgres.ts): the shared Db contract, cancellation of
// running statements by deadline and by signal, typed serialization failures, and surviving a server restart and a
// crash with the same Db (calls fail with StoreUnavailableError during the outage, LISTEN resumes afterwards).
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import pg from "pg";
import type { Db } from "../../../src/store/db.js";
import {
  SerializationFailureError,
  StoreAbortedError,
  StoreTimeoutError,
  StoreUnavailableError,
} from "../../../src/store/errors.js";
import { loadMigrations } from "../../../src/store/migrate.js";
import { openDb } from "../../../src/store/open-db.js";
import { dbContract, Inbox, latch, uniqueTable, waitFor } from "../../support/db-contract.js";
import { freePort } from "../../support/ports.js";
import { startPostgres } from "../../support/postgres.js";

const server = await startPostgres();
after(async () => {
  await server.stop();
});

/** Fast listener reconnects so the restart tests do not wait for the production backoff. */
const open = (): Promise<Db> =>
  openDb({ url: server.url, postgres: { listenReconnectBaseMs: 20, listenReconnectCapMs: 200 } });

/** Statements matching `marker` that are running on the server (seen from an independent connection). */
async function runningStatements(marker: string): Promise<number> {
  const client = new pg.Client({ connectionString: server.url });
  client.on("error", () => {});
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
      [`%${marker}%`],
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

dbContract("PostgreSQL 15", open);

describe("PostgreSQL: deadlines and cancellation", () => {
  let db: Db;
  after(async () => {
    await db?.close();
  });

  test("a statement outliving its deadline is cancelled on the server, and the pool stays usable", async () => {
    db = await open();
    const started = Date.now();
    await assert.rejects(db.query("SELECT pg_sleep(30) AS deadline_marker", [], { timeoutMs: 300 }), StoreTimeoutError);
    assert.ok(Date.now() - started < 3000, `rejected after ${Date.now() - started} ms`);
    await waitFor(async () => (await runningStatements("deadline_marker")) === 0, "the cancelled statement to stop");
    assert.deepEqual((await db.query("SELECT 1 AS one")).rows, [{ one: 1 }]);
  });

  test("an abort signal cancels a running pg_sleep", async () => {
    const ac = new AbortController();
    const running = db.query("SELECT pg_sleep(30) AS abort_marker", [], { signal: ac.signal, timeoutMs: 60_000 });
    await waitFor(async () => (await runningStatements("abort_marker")) === 1, "the statement to start");
    ac.abort();
    await assert.rejects(running, StoreAbortedError);
    await waitFor(async () => (await runningStatements("abort_marker")) === 0, "the aborted statement to stop");
    assert.deepEqual((await db.query("SELECT 2 AS two")).rows, [{ two: 2 }]);
  });

  test("a transaction gets SET LOCAL statement_timeout from its deadline and is cancelled at it", async () => {
    const setting = await db.tx(
      async (q) => (await q.query<{ t: string }>("SELECT current_setting('statement_timeout') AS t")).rows[0]?.t,
      { timeoutMs: 5000 },
    );
    const ms = /^(\d+)ms$/.exec(setting ?? "")?.[1] ?? (/^(\d+)s$/.exec(setting ?? "")?.[1] ?? "0") + "000";
    assert.ok(Number(ms) > 0 && Number(ms) <= 5000, `statement_timeout ${setting}`);
    // outside a transaction the session has no statement_timeout left over
    assert.deepEqual((await db.query("SELECT current_setting('statement_timeout') AS t")).rows, [{ t: "0" }]);

    const t = uniqueTable("txto");
    await db.query(`CREATE TABLE ${t} (id int)`);
    await assert.rejects(
      db.tx(
        async (q) => {
          await q.query(`INSERT INTO ${t} VALUES (1)`);
          await q.query("SELECT pg_sleep(30) AS tx_marker");
        },
        { timeoutMs: 300 },
      ),
      StoreTimeoutError,
    );
    await waitFor(async () => (await runningStatements("tx_marker")) === 0, "the cancelled statement to stop");
    assert.equal((await db.query(`SELECT * FROM ${t}`)).rowCount, 0);
  });

  test("a serialization failure is a typed, retryable error", async () => {
    const t = uniqueTable("ser");
    await db.query(`CREATE TABLE ${t} (class int, value int)`);
    await db.query(`INSERT INTO ${t} VALUES (1, 10), (2, 20)`);
    const bothRead = { a: latch(), b: latch() };
    const run = (mine: number, theirs: number, read: ReturnType<typeof latch>, other: ReturnType<typeof latch>) =>
      db.tx(
        async (q) => {
          const { rows } = await q.query<{ s: string }>(`SELECT sum(value) AS s FROM ${t} WHERE class = $1`, [mine]);
          read.open();
          await other.promise;
          await q.query(`INSERT INTO ${t} VALUES ($1, $2)`, [theirs, Number(rows[0]?.s ?? 0)]);
        },
        { isolation: "serializable" },
      );
    const results = await Promise.allSettled([run(1, 2, bothRead.a, bothRead.b), run(2, 1, bothRead.b, bothRead.a)]);
    const failures = results.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason);
    assert.equal(failures.length, 1, "exactly one of the two conflicting transactions fails");
    assert.ok(failures[0] instanceof SerializationFailureError, String(failures[0]));
    assert.equal(failures[0].retryable, true);
    assert.equal(failures[0].sqlState, "40001");
  });

  test("opening a database that is not there fails with StoreUnavailableError", async () => {
    const port = await freePort();
    await assert.rejects(openDb({ url: `postgres://postgres@127.0.0.1:${port}/nowhere` }), StoreUnavailableError);
  });
});

describe("PostgreSQL: migrations", () => {
  test("several processes starting at once apply every migration exactly once", async () => {
    const admin = await open();
    try {
      await admin.query("CREATE DATABASE migrate_race");
    } finally {
      await admin.close();
    }
    const url = server.url.replace(/\/stackl$/, "/migrate_race");
    const dbs = await Promise.all(Array.from({ length: 4 }, () => openDb({ url })));
    try {
      const files = await loadMigrations();
      const { rows } = await dbs[0]!.query<{ version: number; n: number }>(
        "SELECT version, count(*) AS n FROM schema_migrations GROUP BY version ORDER BY version",
      );
      assert.deepEqual(
        rows,
        files.map((m) => ({ version: m.version, n: 1 })),
      );
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
    }
  });
});

describe("PostgreSQL: surviving restarts with the same Db", () => {
  let db: Db;
  const inbox = new Inbox();
  let reconnects = 0;

  after(async () => {
    await db?.close();
  });

  test("setup: listening and writing", async () => {
    db = await open();
    await db.listen("restart_events", inbox.push, {
      onReconnect: () => {
        reconnects++;
      },
    });
    await db.notify("restart_events", "before");
    assert.equal(await inbox.next(), "before");
    await db.query("CREATE TABLE restart_log (id int PRIMARY KEY, note text)");
    await db.query("INSERT INTO restart_log VALUES (1, 'before restart')");
  });

  test("fast shutdown: calls fail with StoreUnavailableError during the outage and succeed after it", async () => {
    // a transaction in flight when the server goes down
    const inTx = latch();
    const hold = latch();
    const interrupted = db.tx(async (q) => {
      await q.query("INSERT INTO restart_log VALUES (2, 'lost with the restart')");
      inTx.open();
      await hold.promise;
      await q.query("INSERT INTO restart_log VALUES (3, 'never')");
    });
    await inTx.promise;
    // warm idle connections in the pool, which the shutdown kills under it
    await Promise.all([db.query("SELECT 1"), db.query("SELECT 2"), db.query("SELECT 3")]);
    // and a statement running when it goes down
    const running = assert.rejects(db.query("SELECT pg_sleep(30) AS restart_marker"), StoreUnavailableError);
    await waitFor(async () => (await runningStatements("restart_marker")) === 1, "the statement to start");

    await server.stop();
    await running;
    hold.open();
    await assert.rejects(interrupted, StoreUnavailableError);
    await assert.rejects(db.query("SELECT 1"), StoreUnavailableError);
    await assert.rejects(
      db.tx(async (q) => q.query("SELECT 1")),
      StoreUnavailableError,
    );
    assert.equal(await db.ready(), false);

    const reconnectsBefore = reconnects;
    await server.start();
    // the very first call after recovery succeeds: dead connections were discarded, not reused
    assert.deepEqual((await db.query("SELECT note FROM restart_log ORDER BY id")).rows, [{ note: "before restart" }]);
    assert.equal(await db.ready(), true);
    await db.tx(async (q) => q.query("INSERT INTO restart_log VALUES (4, 'after restart')"));

    await waitFor(() => reconnects > reconnectsBefore, "the listener to reconnect");
    await db.notify("restart_events", "after restart");
    assert.equal(await inbox.next(), "after restart");
  });

  test("crash (SIGKILL of the postmaster): same behaviour, committed rows survive", async () => {
    await server.kill();
    await assert.rejects(db.query("SELECT 1"), StoreUnavailableError);
    const reconnectsBefore = reconnects;
    await server.start();
    assert.deepEqual((await db.query("SELECT id FROM restart_log ORDER BY id")).rows, [{ id: 1 }, { id: 4 }]);
    await waitFor(() => reconnects > reconnectsBefore, "the listener to reconnect");
    await db.notify("restart_events", "after crash");
    assert.equal(await inbox.next(), "after crash");
  });

  test("a terminated LISTEN connection is replaced and reported through onReconnect", async () => {
    const reconnectsBefore = reconnects;
    const { rows } = await db.query<{ terminated: boolean }>(
      "SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE application_name = 'stackl-listen'",
    );
    assert.deepEqual(rows, [{ terminated: true }]);
    await waitFor(() => reconnects > reconnectsBefore, "the listener to reconnect");
    await db.notify("restart_events", "after terminate");
    assert.equal(await inbox.next(), "after terminate");
  });
});
