import { type Logger, pino } from "pino";
import type { DbKind } from "./db.js";

let silent: Logger | undefined;

/** The store's child logger (`component: "store"`, `db: kind`), or a silent one when the caller passed none. */
export function storeLogger(parent: Logger | undefined, kind: DbKind): Logger {
  silent ??= pino({ level: "silent" });
  return (parent ?? silent).child({ component: "store", db: kind });
}
