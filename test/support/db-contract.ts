// The behaviour every `Db` adapter must show, run against PGlite (unit) and a real PostgreSQL (integration).
// One Db per suite (PGlite takes seconds to start); every test uses its own table names.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Db } from "../../src/store/db.js";
import { StoreAbortedError, StoreQueryError, StoreTimeoutError, UniqueViolationError } from "../../src/store/errors.js";
import { loadMigrations, migrate } from "../../src/store/migrate.js";

/** Bounded wait for async conditions in these tests. */
export const waitMs = 10_000;

/** Poll `condition` (with a short backoff) until it holds; fail after `timeoutMs`. Never a fixed sleep. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = waitMs,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  for (;;) {
    if (await condition()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 200);
  }
}

/** Collects NOTIFY payloads; `next()` waits (bounded) for the next one. */
export class Inbox {
  readonly #queue: string[] = [];
  readonly #waiters: Array<(payload: string) => void> = [];

  /** Payloads received and not yet taken. */
  get size(): number {
    return this.#queue.length;
  }

  readonly push = (payload: string): void => {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(payload);
    else this.#queue.push(payload);
  };

  next(timeoutMs = waitMs): Promise<string> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error(`no notification within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (payload: string): void => {
        clearTimeout(timer);
        resolve(payload);
      };
      this.#waiters.push(waiter);
    });
  }
}

/** A promise plus its resolver, to hold a transaction open until the test says so. */
export function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

let tableSeq = 0;
/** A table name unique within this process (suites share one database). */
export function uniqueTable(prefix: string): string {
  tableSeq++;
  return `${prefix}_${process.pid}_${tableSeq}`;
}

/**
 * Register the shared suite. `makeDb` returns a migrated Db; the suite closes it at the end.
 */
export function dbContract(name: string, makeDb: () => Promise<Db>): void {
  describe(`Db contract: ${name}`, () => {
    let db: Db;

    before(async () => {
      db = await makeDb();
    });

    after(async () => {
      await db?.close();
    });

    test("migrations are applied once and re-running them is a no-op", async () => {
      const files = await loadMigrations();
      const again = await migrate(db);
      assert.deepEqual(again.applied, []);
      assert.equal(again.current, Math.max(...files.map((m) => m.version)));
      const { rows } = await db.query<{ version: number; name: string; applied_at: Date }>(
        "SELECT version, name, applied_at FROM schema_migrations ORDER BY version",
      );
      assert.deepEqual(
        rows.map((r) => [r.version, r.name]),
        files.map((m) => [m.version, m.name]),
      );
      assert.ok(rows[0]?.applied_at instanceof Date);
      await db.query("INSERT INTO stackl_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", [
        "contract",
        "ok",
      ]);
      const meta = await db.query<{ value: string }>("SELECT value FROM stackl_meta WHERE key = $1", ["contract"]);
      assert.deepEqual(meta.rows, [{ value: "ok" }]);
    });

    test("query returns rows and rowCount for every kind of statement", async () => {
      const t = uniqueTable("rc");
      const created = await db.query(`CREATE TABLE ${t} (id int PRIMARY KEY, v text)`);
      assert.equal(created.rowCount, 0);
      const ins = await db.query(`INSERT INTO ${t} VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
      assert.equal(ins.rowCount, 3);
      const upd = await db.query(`UPDATE ${t} SET v = v || '!' WHERE id >= $1`, [2]);
      assert.equal(upd.rowCount, 2);
      const sel = await db.query<{ id: number; v: string }>(`SELECT id, v FROM ${t} ORDER BY id`);
      assert.equal(sel.rowCount, 3);
      assert.deepEqual(sel.rows, [
        { id: 1, v: "a" },
        { id: 2, v: "b!" },
        { id: 3, v: "c!" },
      ]);
      const del = await db.query(`DELETE FROM ${t} WHERE id = $1 RETURNING v`, [3]);
      assert.equal(del.rowCount, 1);
      assert.deepEqual(del.rows, [{ v: "c!" }]);
    });

    test("query runs exactly one statement; exec runs scripts", async () => {
      await assert.rejects(db.query("SELECT 1; SELECT 2"), StoreQueryError);
      const t = uniqueTable("ex");
      await db.exec(`CREATE TABLE ${t} (id int); INSERT INTO ${t} VALUES (1); INSERT INTO ${t} VALUES (2);`);
      const { rows } = await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${t}`);
      assert.deepEqual(rows, [{ n: 2 }]);
    });

    test("types are normalised: int8 → number, numeric → string, bytea → Uint8Array, timestamptz → Date, jsonb → object", async () => {
      const { rows } = await db.query(
        `SELECT 42::int8 AS i8, count(*) AS cnt, 7::int4 AS i4, 1.5::float8 AS f8, 12345678901234567890.5::numeric AS num,
                '\\x00ff10'::bytea AS bin, '2024-02-29 12:34:56.789+00'::timestamptz AS ts,
                '2024-02-29 12:34:56.789'::timestamp AS ts_local, '2024-02-29'::date AS d, '1 day 02:00:00'::interval AS iv,
                '{"a": [1, {"b": null}], "c": "x"}'::jsonb AS jb, '[1,2]'::json AS js, true AS yes,
                '00000000-0000-0000-0000-000000000001'::uuid AS id, NULL::int8 AS nothing,
                ARRAY[1, 9007199254740991]::int8[] AS i8s, ARRAY['1.10', NULL]::numeric[] AS nums,
                ARRAY['a b', 'c"d', NULL]::text[] AS texts, ARRAY['{"k":1}']::jsonb[] AS jbs,
                ARRAY['\\x01'::bytea] AS bins, ARRAY['2024-01-01 00:00:00+00'::timestamptz] AS tss
           FROM (VALUES (1), (2)) v(x)`,
      );
      assert.deepEqual(rows, [
        {
          i8: 42,
          cnt: 2,
          i4: 7,
          f8: 1.5,
          num: "12345678901234567890.5",
          bin: new Uint8Array([0, 255, 16]),
          ts: new Date("2024-02-29T12:34:56.789Z"),
          ts_local: new Date("2024-02-29T12:34:56.789Z"),
          d: "2024-02-29",
          iv: "1 day 02:00:00",
          jb: { a: [1, { b: null }], c: "x" },
          js: [1, 2],
          yes: true,
          id: "00000000-0000-0000-0000-000000000001",
          nothing: null,
          i8s: [1, 9007199254740991],
          nums: ["1.10", null],
          texts: ["a b", 'c"d', null],
          jbs: [{ k: 1 }],
          bins: [new Uint8Array([1])],
          tss: [new Date("2024-01-01T00:00:00Z")],
        },
      ]);
      const bin = rows[0]?.bin;
      assert.ok(bin instanceof Uint8Array && !Buffer.isBuffer(bin), "bytea is a plain Uint8Array");
    });

    test("parameters round-trip through typed columns", async () => {
      const t = uniqueTable("rt");
      await db.query(
        `CREATE TABLE ${t} (id bigint PRIMARY KEY, amount numeric, data bytea, at timestamptz, doc jsonb, tags text[], ok bool)`,
      );
      const at = new Date("2025-06-01T10:20:30.456Z");
      await db.query(`INSERT INTO ${t} VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
        9007199254740991,
        "0.10",
        new Uint8Array([1, 2, 3]),
        at,
        JSON.stringify({ list: [1, 2], nested: { x: "y" } }),
        ["a", "b,c"],
        false,
      ]);
      const { rows } = await db.query(`SELECT * FROM ${t}`);
      assert.deepEqual(rows, [
        {
          id: 9007199254740991,
          amount: "0.10",
          data: new Uint8Array([1, 2, 3]),
          at,
          doc: { list: [1, 2], nested: { x: "y" } },
          tags: ["a", "b,c"],
          ok: false,
        },
      ]);
    });

    test("an int8 beyond 2^53 is an error, never a silently wrong number", async () => {
      await assert.rejects(db.query("SELECT 9007199254740993::int8 AS big"), StoreQueryError);
      // the connection is still fine afterwards
      assert.deepEqual((await db.query("SELECT 1 AS one")).rows, [{ one: 1 }]);
    });

    test("tx commits on success and returns the callback's value", async () => {
      const t = uniqueTable("txc");
      await db.query(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
      const value = await db.tx(async (q) => {
        await q.query(`INSERT INTO ${t} VALUES ($1)`, [1]);
        await q.query(`INSERT INTO ${t} VALUES ($1)`, [2]);
        return (await q.query<{ n: number }>(`SELECT count(*) AS n FROM ${t}`)).rows[0]?.n;
      });
      assert.equal(value, 2);
      assert.deepEqual((await db.query(`SELECT id FROM ${t} ORDER BY id`)).rows, [{ id: 1 }, { id: 2 }]);
    });

    test("tx rolls back when the callback throws, and rethrows the same error", async () => {
      const t = uniqueTable("txr");
      await db.query(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
      const boom = new Error("boom");
      await assert.rejects(
        db.tx(async (q) => {
          await q.query(`INSERT INTO ${t} VALUES (1)`);
          throw boom;
        }),
        (err) => err === boom,
      );
      assert.equal((await db.query(`SELECT * FROM ${t}`)).rowCount, 0);
    });

    test("a unique violation is a typed error naming the constraint, and rolls the tx back", async () => {
      const t = uniqueTable("uv");
      await db.query(`CREATE TABLE ${t} (id int CONSTRAINT ${t}_pk PRIMARY KEY)`);
      await db.query(`INSERT INTO ${t} VALUES (1)`);
      await assert.rejects(db.query(`INSERT INTO ${t} VALUES (1)`), (err: unknown) => {
        assert.ok(err instanceof UniqueViolationError);
        assert.equal(err.constraint, `${t}_pk`);
        assert.equal(err.sqlState, "23505");
        assert.equal(err.retryable, false);
        return true;
      });
      await assert.rejects(
        db.tx(async (q) => {
          await q.query(`INSERT INTO ${t} VALUES (2)`);
          await q.query(`INSERT INTO ${t} VALUES (1)`);
        }),
        UniqueViolationError,
      );
      assert.deepEqual((await db.query(`SELECT id FROM ${t}`)).rows, [{ id: 1 }]);
    });

    test("a tx whose failed statement was swallowed does not commit", async () => {
      const t = uniqueTable("sw");
      await db.query(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
      await assert.rejects(
        db.tx(async (q) => {
          await q.query(`INSERT INTO ${t} VALUES (1)`);
          await q.query(`INSERT INTO ${t} VALUES (1)`).catch(() => {});
        }),
        StoreQueryError,
      );
      assert.equal((await db.query(`SELECT * FROM ${t}`)).rowCount, 0);
    });

    test("the tx handle is unusable after the tx ended", async () => {
      let leaked: { query: (sql: string) => Promise<unknown> } | undefined;
      await db.tx(async (q) => {
        leaked = q;
      });
      await assert.rejects(async () => leaked?.query("SELECT 1"), StoreQueryError);
    });

    test("isolation levels are accepted", async () => {
      for (const isolation of ["read committed", "repeatable read", "serializable"] as const) {
        const level = await db.tx(
          async (q) =>
            (await q.query<{ l: string }>("SELECT current_setting('transaction_isolation') AS l")).rows[0]?.l,
          { isolation },
        );
        assert.equal(level, isolation);
      }
    });

    test("concurrent transactions do not interleave (read-modify-write under FOR UPDATE)", async () => {
      const t = uniqueTable("cc");
      await db.query(`CREATE TABLE ${t} (id int PRIMARY KEY, n int NOT NULL)`);
      await db.query(`INSERT INTO ${t} VALUES (1, 0)`);
      const workers = 20;
      await Promise.all([
        ...Array.from({ length: workers }, () =>
          db.tx(async (q) => {
            const { rows } = await q.query<{ n: number }>(`SELECT n FROM ${t} WHERE id = 1 FOR UPDATE`);
            await q.query(`UPDATE ${t} SET n = $1 WHERE id = 1`, [(rows[0]?.n ?? 0) + 1]);
          }),
        ),
        // plain statements racing with the transactions
        ...Array.from({ length: workers }, () => db.query(`SELECT n FROM ${t}`)),
      ]);
      assert.deepEqual((await db.query(`SELECT n FROM ${t}`)).rows, [{ n: workers }]);
    });

    test("a call waiting behind a running tx fails with StoreTimeoutError at its deadline", async () => {
      const t = uniqueTable("to");
      await db.query(`CREATE TABLE ${t} (id int PRIMARY KEY, n int)`);
      await db.query(`INSERT INTO ${t} VALUES (1, 0)`);
      const hold = latch();
      const locked = latch();
      const holder = db.tx(async (q) => {
        await q.query(`SELECT * FROM ${t} WHERE id = 1 FOR UPDATE`);
        locked.open();
        await hold.promise;
      });
      await locked.promise;
      const started = Date.now();
      await assert.rejects(db.query(`UPDATE ${t} SET n = 1 WHERE id = 1`, [], { timeoutMs: 200 }), StoreTimeoutError);
      assert.ok(Date.now() - started < 5000, "gave up near its deadline");
      hold.open();
      await holder;
      await db.query(`UPDATE ${t} SET n = 2 WHERE id = 1`);
      assert.deepEqual((await db.query(`SELECT n FROM ${t}`)).rows, [{ n: 2 }]);
    });

    test("an aborted signal rejects with StoreAbortedError (before and while waiting)", async () => {
      const already = new AbortController();
      already.abort(new Error("caller went away"));
      await assert.rejects(db.query("SELECT 1", [], { signal: already.signal }), StoreAbortedError);
      await assert.rejects(
        db.tx(async () => {}, { signal: already.signal }),
        StoreAbortedError,
      );

      const t = uniqueTable("ab");
      await db.query(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
      await db.query(`INSERT INTO ${t} VALUES (1)`);
      const hold = latch();
      const locked = latch();
      const holder = db.tx(async (q) => {
        await q.query(`SELECT * FROM ${t} FOR UPDATE`);
        locked.open();
        await hold.promise;
      });
      await locked.promise;
      const ac = new AbortController();
      const waiting = db.query(`DELETE FROM ${t}`, [], { signal: ac.signal });
      ac.abort();
      await assert.rejects(waiting, StoreAbortedError);
      hold.open();
      await holder;
      assert.equal((await db.query(`SELECT * FROM ${t}`)).rowCount, 1, "the aborted DELETE did not run");
    });

    test("the deadline bounds the whole tx: work finishing late is rolled back", async () => {
      const t = uniqueTable("late");
      await db.query(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
      await assert.rejects(
        db.tx(
          async (q) => {
            await q.query(`INSERT INTO ${t} VALUES (1)`);
            await q.query("SELECT pg_sleep(0.3)");
          },
          { timeoutMs: 100 },
        ),
        StoreTimeoutError,
      );
      assert.equal((await db.query(`SELECT * FROM ${t}`)).rowCount, 0);
    });

    test("listen/notify delivers payloads, in order, after commit only", async () => {
      const inbox = new Inbox();
      const other = new Inbox();
      const channel = `c_${process.pid}_a`;
      const otherChannel = `c_${process.pid}_b`;
      const unlisten = await db.listen(channel, inbox.push);
      const unlistenOther = await db.listen(otherChannel, other.push);
      try {
        await db.notify(channel, "one");
        await db.query("SELECT pg_notify($1, $2)", [channel, "two"]);
        assert.equal(await inbox.next(), "one");
        assert.equal(await inbox.next(), "two");

        await assert.rejects(
          db.tx(async (q) => {
            await q.query("SELECT pg_notify($1, 'rolled back')", [channel]);
            throw new Error("abort tx");
          }),
        );
        await db.tx(async (q) => {
          await q.query("SELECT pg_notify($1, 'committed')", [channel]);
        });
        assert.equal(await inbox.next(), "committed", "the rolled-back NOTIFY was not delivered");

        await unlisten();
        await db.notify(channel, "after unlisten");
        await db.notify(otherChannel, "marker");
        // Notifications arrive in order: once the marker is here, the earlier one would have been too.
        assert.equal(await other.next(), "marker");
        assert.equal(inbox.size, 0, "nothing delivered after unlisten");
      } finally {
        await unlisten();
        await unlistenOther();
      }
    });

    test("listen rejects channel names that would need quoting", async () => {
      await assert.rejects(
        db.listen("Bad-Name", () => {}),
        RangeError,
      );
      await assert.rejects(
        db.listen("x; DROP TABLE y", () => {}),
        RangeError,
      );
    });

    test("ready() answers true", async () => {
      assert.equal(await db.ready(), true);
    });
  });
}
