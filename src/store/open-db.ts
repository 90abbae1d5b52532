/**
 * Open the configured database and bring its schema up to date: PostgreSQL for `url`, PGlite on `dataDir`, or PGlite
 * in memory. The one entry point the rest of STACKL uses to get a `Db`.
 */
import type { Logger } from "pino";
import type { Db } from "./db.js";
import { migrate } from "./migrate.js";
import { openPgDb, type PgDbOptions } from "./pg-db.js";
import { openPgliteDb, type PgliteDbOptions } from "./pglite-db.js";

export interface OpenDbOptions {
  /** `postgres://…` or `postgresql://…`: use PostgreSQL. @default undefined */
  url?: string;
  /** Use PGlite on this directory (locked against a second process). @default undefined */
  dataDir?: string;
  /** Use PGlite in memory (tests). @default false */
  memory?: boolean;
  logger?: Logger;
  /** Abandons opening and migrating; whatever was opened is closed again. */
  signal?: AbortSignal;
  /** Apply pending migrations before returning. @default true */
  migrate?: boolean;
  /** Folder of migration files. @default `src/store/migrations` */
  migrationsDir?: string;
  /** Extra `pg` adapter settings (pool size, timeouts) when `url` is set. @default {} */
  postgres?: Omit<PgDbOptions, "url" | "logger">;
  /** Extra PGlite adapter settings when `dataDir` or `memory` is set. @default {} */
  pglite?: Omit<PgliteDbOptions, "dataDir" | "logger" | "signal">;
}

/** Open exactly one of: `url` (PostgreSQL), `dataDir` (PGlite on disk), `memory: true` (PGlite in memory). */
export async function openDb(opts: OpenDbOptions): Promise<Db> {
  const chosen = [opts.url !== undefined, opts.dataDir !== undefined, opts.memory === true].filter(Boolean).length;
  if (chosen !== 1) {
    throw new RangeError("openDb needs exactly one of: url (PostgreSQL), dataDir (PGlite) or memory: true (PGlite)");
  }
  let db: Db;
  if (opts.url !== undefined) {
    if (!/^postgres(ql)?:\/\//.test(opts.url)) {
      throw new RangeError("database url must start with postgres:// or postgresql://");
    }
    db = await openPgDb({ ...opts.postgres, url: opts.url, logger: opts.logger }, { signal: opts.signal });
  } else {
    db = await openPgliteDb({ ...opts.pglite, dataDir: opts.dataDir, logger: opts.logger, signal: opts.signal });
  }
  if (opts.migrate === false) return db;
  try {
    await migrate(db, {
      dir: opts.migrationsDir,
      signal: opts.signal,
      logger: opts.logger?.child({ component: "store" }),
    });
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}
