/** A one-paragraph description of the machine and versions, printed at the top of every benchmark's output. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { toolVersions } from "../../test/support/tools.js";

export function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m?.[1]) return m[1].trim();
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? "unknown";
}

/** The commit the working tree is on, and whether src/ has uncommitted changes (others edit concurrently). */
export function sourceLine(): string {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src", "gen"], { encoding: "utf8" }).trim();
    return `source ${head}${dirty === "" ? "" : " + uncommitted changes in src/"}`;
  } catch {
    return "source unknown (not a git checkout)";
  }
}

export function machineLine(): string {
  const v = toolVersions();
  const [l1, l5] = loadavg();
  return [
    `date ${new Date().toISOString()}`,
    `CPU ${cpuModel()} × ${cpus().length} cores`,
    `RAM ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `Node ${process.version}`,
    `PostgreSQL ${v.POSTGRES_MAJOR ?? "?"}`,
    `nats-server ${v.NATS_SERVER_VERSION ?? "?"}`,
    `load average at start ${l1?.toFixed(2)} / ${l5?.toFixed(2)} (1 / 5 min)`,
    sourceLine(),
  ].join("; ");
}
