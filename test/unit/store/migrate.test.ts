import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadMigrations, upSection } from "../../../src/store/migrate.js";

test("upSection follows node-pg-migrate's SQL format", () => {
  assert.equal(upSection("-- Up Migration\nCREATE x;\n-- Down Migration\nDROP x;\n"), "-- Up Migration\nCREATE x;\n");
  assert.equal(upSection("--- up migration\nA;"), "--- up migration\nA;");
  assert.equal(upSection("CREATE x;"), "CREATE x;");
  assert.equal(upSection("-- Down Migration\nDROP x;\n-- Up Migration\nCREATE x;"), "-- Up Migration\nCREATE x;");
});

test("loadMigrations reads the shipped files in order, starting with 0001_init", async () => {
  const migrations = await loadMigrations();
  assert.equal(migrations[0]?.version, 1);
  assert.equal(migrations[0]?.name, "init");
  assert.match(migrations[0]?.up ?? "", /CREATE TABLE stackl_meta/);
  assert.doesNotMatch(migrations[0]?.up ?? "", /DROP TABLE/);
  const versions = migrations.map((m) => m.version);
  assert.deepEqual(
    versions,
    [...versions].sort((a, b) => a - b),
  );
});

test("loadMigrations rejects badly named and duplicate versions", async () => {
  const dir = await mkdtemp(join(tmpdir(), "stackl-mig-"));
  try {
    await writeFile(join(dir, "0001_a.sql"), "SELECT 1;");
    await writeFile(join(dir, "0001_b.sql"), "SELECT 1;");
    await assert.rejects(loadMigrations(dir), /share version 1/);
    await rm(join(dir, "0001_b.sql"));
    await writeFile(join(dir, "2_Bad.sql"), "SELECT 1;");
    await assert.rejects(loadMigrations(dir), /not named NNNN_lower_snake_name\.sql/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
