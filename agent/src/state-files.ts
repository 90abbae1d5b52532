import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";

/** Writes `data` to `file` atomically (temp file + rename) with mode 0600, creating the directory (0700). */
export function writePrivateFile(file: string, data: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, file);
}
