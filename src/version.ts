import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The version of STACKL, read from the package.json of the `stackl` package (found by walking up from this module,
 * so it works from `src/` under tsx and from `dist/src/` after a build).
 */
function readVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(dir, "package.json");
    if (existsSync(file)) {
      try {
        const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: unknown; version?: unknown };
        if (pkg.name === "stackl" && typeof pkg.version === "string") return pkg.version;
      } catch {
        // not ours or unreadable: keep walking up
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return "0.0.0-unknown";
    dir = parent;
  }
}

export const VERSION: string = readVersion();

/** `stackl 0.1.0 (node v24.21.0, linux-x64)` */
export function versionLine(): string {
  return `stackl ${VERSION} (node ${process.version}, ${process.platform}-${process.arch})`;
}
