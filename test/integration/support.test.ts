// Proves the test-support servers are real and survive restarts. Needs `scripts/tools.sh postgres nats`.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { startNats } from "../support/nats.js";
import { freePort } from "../support/ports.js";
import { startPostgres } from "../support/postgres.js";
import { processAlive, toolPath, toolVersions } from "../support/tools.js";

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

test("freePort returns a bindable loopback port", async () => {
  const port = await freePort();
  assert.ok(Number.isInteger(port) && port > 0 && port < 65536);
});

test("toolPath resolves the pinned binaries", () => {
  assert.match(toolVersions().NATS_SERVER_VERSION ?? "", /^v\d+\.\d+\.\d+$/);
  for (const name of ["nats-server", "pg_ctl"] as const) assert.ok(existsSync(toolPath(name)), name);
});

test("postgres: starts, answers queries, keeps data across restart and crash", async () => {
  const pgs = await startPostgres();
  try {
    assert.equal(pgs.url, `postgres://postgres@127.0.0.1:${pgs.port}/stackl`);
    const [row] = await query<{ v: string; db: string }>(pgs.url, "SELECT version() AS v, current_database() AS db");
    assert.match(row!.v, /^PostgreSQL 15\./);
    assert.equal(row!.db, "stackl");

    await query(pgs.url, "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL)");
    await query(pgs.url, "INSERT INTO t VALUES ($1, $2)", [1, "before restart"]);

    await pgs.restart();
    assert.deepEqual(await query(pgs.url, "SELECT id, name FROM t ORDER BY id"), [{ id: 1, name: "before restart" }]);

    await pgs.stop();
    await assert.rejects(query(pgs.url, "SELECT 1"));
    await pgs.start();
    await query(pgs.url, "INSERT INTO t VALUES ($1, $2)", [2, "before crash"]);

    // An idle connection held across a SIGKILL must not crash the test process.
    const held = new pg.Client({ connectionString: pgs.url });
    held.on("error", () => {});
    await held.connect();
    await pgs.kill();
    await held.end().catch(() => {});
    await pgs.start(); // crash recovery
    const names = await query<{ name: string }>(pgs.url, "SELECT name FROM t ORDER BY id");
    assert.deepEqual(
      names.map((r) => r.name),
      ["before restart", "before crash"],
    );
  } finally {
    await pgs.stop();
  }
});

test("nats: JetStream works and survives stop/start and kill on the same port", async () => {
  const ns = await startNats();
  try {
    assert.equal(ns.url, `nats://127.0.0.1:${ns.port}`);
    const firstPid = ns.pid;
    assert.ok(processAlive(firstPid));

    const withJsm = async <T>(fn: (jsm: Awaited<ReturnType<typeof jetstreamManager>>) => Promise<T>): Promise<T> => {
      const nc = await connect({ servers: ns.url, reconnect: false });
      try {
        return await fn(await jetstreamManager(nc));
      } finally {
        await nc.close();
      }
    };

    await withJsm(async (jsm) => {
      await jsm.streams.add({ name: "ORDERS", subjects: ["orders.>"] });
      const js = jsm.jetstream();
      const ack = await js.publish("orders.1", "hello");
      assert.equal(ack.seq, 1);
    });

    await ns.stop();
    assert.ok(!processAlive(firstPid));
    await ns.start();
    assert.notEqual(ns.pid, firstPid);

    await withJsm(async (jsm) => {
      const info = await jsm.streams.info("ORDERS");
      assert.equal(info.state.messages, 1);
      const ack = await jsm.jetstream().publish("orders.2", "again");
      assert.equal(ack.seq, 2);
    });

    await ns.kill();
    await ns.start();
    await withJsm(async (jsm) => {
      const info = await jsm.streams.info("ORDERS");
      assert.equal(info.config.name, "ORDERS");
      assert.ok(info.state.messages >= 1);
    });
  } finally {
    await ns.stop();
  }
});
