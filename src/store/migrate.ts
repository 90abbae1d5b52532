/**
 * Schema migrations: plain numbered SQL files `migrations/NNNN_name.sql` in node-pg-migrate's SQL format (the
 * `-- Up Migration` section is applied; `-- Down Migration` is ignored), so node-pg-migrate can take over later.
 * Each file runs in its own transaction under `pg_advisory_xact_lock`, so several processes starting at once apply
 * every file exactly once; applied versions are recorded in `schema_migrations(version, name, applied_at)`.
 * Running it again is a no-op.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import type { Db, Queryable } from "./db.js";
import { Deadline } from "./deadline.js";

/** One migration file. */
export interface Migration {
  /** The number in the file name (`0002_documents.sql` → 2). */
  version: number;
  /** The rest of the file name (`documents`). */
  name: string;
  /** The SQL of the `-- Up Migration` section (the whole file when it has no markers). */
  up: string;
}

export interface MigrateOptions {
  /** Folder of `NNNN_name.sql` files. @default the `migrations/` folder next to this module */
  dir?: string;
  /** Migrations to apply instead of reading `dir` (tests). @default read from `dir` */
  migrations?: Migration[];
  /** Budget for each file, including waiting for the advisory lock. @default 300000 */
  perMigrationTimeoutMs?: number;
  /** Abandons migrating between (or during) files; an interrupted file is rolled back. */
  signal?: AbortSignal;
  logger?: Logger;
}

export interface MigrateResult {
  /** Versions applied by this call, in order. */
  applied: number[];
  /** Highest version now recorded. */
  current: number;
}

/**
 * Advisory lock key shared by every STACKL process migrating a database (the first 8 bytes of sha256("stackl.migrate")
 * would do as well; any constant unlikely to collide with other applications works).
 */
export const migrationLockKey = 0x5354_4b4c_6d67; // "STKLmg"

const fileNamePattern = /^(\d{4})_([a-z0-9_]+)\.sql$/;
const upMarker = /^\s*--[\s-]*up\s+migration/im;
const downMarker = /^\s*--[\s-]*down\s+migration/im;

/** The default migrations folder (`src/store/migrations`). */
export const defaultMigrationsDir = fileURLToPath(new URL("./migrations/", import.meta.url));

/** Extract the Up section the way node-pg-migrate's `sqlMigration` does. */
export function upSection(content: string): string {
  const up = content.search(upMarker);
  const down = content.search(downMarker);
  if (up < 0) return down < 0 ? content : content.slice(0, down);
  return content.slice(up, down > up ? down : undefined);
}

/** Read and validate the migration files of `dir`, sorted by version. */
export async function loadMigrations(dir: string = defaultMigrationsDir): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  const migrations: Migration[] = [];
  const seen = new Map<number, string>();
  for (const file of files) {
    const m = fileNamePattern.exec(file);
    if (m === null) throw new Error(`migration file ${file} in ${dir} is not named NNNN_lower_snake_name.sql`);
    const version = Number(m[1]);
    const other = seen.get(version);
    if (other !== undefined) throw new Error(`migrations ${other} and ${file} in ${dir} share version ${version}`);
    seen.set(version, file);
    migrations.push({ version, name: m[2] ?? "", up: upSection(await readFile(join(dir, file), "utf8")) });
  }
  return migrations;
}

/** Apply every migration not yet recorded, oldest first. */
export async function migrate(db: Db, opts: MigrateOptions = {}): Promise<MigrateResult> {
  const migrations = opts.migrations ?? (await loadMigrations(opts.dir));
  const timeoutMs = opts.perMigrationTimeoutMs ?? 300_000;
  const call = { signal: opts.signal, timeoutMs };

  await db.tx(async (q) => {
    await lock(q);
    await q.exec(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
  }, call);

  const applied: number[] = [];
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    Deadline.of(call, timeoutMs, "migrate").check();
    const didApply = await db.tx(async (q) => {
      await lock(q);
      const done = await q.query("SELECT 1 FROM schema_migrations WHERE version = $1", [migration.version]);
      if (done.rows.length > 0) return false;
      await q.exec(migration.up);
      await q.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
        migration.version,
        migration.name,
      ]);
      return true;
    }, call);
    if (didApply) {
      applied.push(migration.version);
      opts.logger?.info({ version: migration.version, name: migration.name }, "migration applied");
    }
  }

  const { rows } = await db.query<{ current: number | null }>(
    "SELECT max(version) AS current FROM schema_migrations",
    [],
    call,
  );
  return { applied, current: rows[0]?.current ?? 0 };
}

/** Serialise migrators across processes for the rest of the transaction. */
async function lock(q: Queryable): Promise<void> {
  await q.query("SELECT pg_advisory_xact_lock($1)", [migrationLockKey]);
}
