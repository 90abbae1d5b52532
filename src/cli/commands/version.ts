import type { Command } from "commander";
import { VERSION, versionLine } from "../../version.js";

/** `stackl version`: version, Node.js version and platform. */
export function register(program: Command): void {
  program
    .command("version")
    .description("print the version, the Node.js version and the platform")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      const text = opts.json
        ? JSON.stringify({ version: VERSION, node: process.version, platform: `${process.platform}-${process.arch}` })
        : versionLine();
      process.stdout.write(`${text}\n`);
    });
}
