import type { Command } from "commander";
import { loadConfig } from "../../config/config.js";
import { addConfigOptions, configFlags } from "../config-options.js";
import { runServer } from "../run-server.js";

/** `stackl serve`: the API server (one replica); connects to the configured store and bus. */
export function register(program: Command): void {
  const command = program
    .command("serve")
    .description("run the API server (gRPC, gRPC-Web and Connect on one port; health, reflection, /metrics)")
    .addHelpText(
      "after",
      "\nEvery option can also be set with its STACKL_* environment variable; flags win.\n" +
        "Stops gracefully on SIGTERM/SIGINT (in-flight calls get STACKL_SHUTDOWN_GRACE); a second signal forces it.",
    );
  addConfigOptions(command);
  command.action(async () => {
    const config = loadConfig({ flags: configFlags(command) });
    process.exitCode = await runServer({ config, role: "serve" });
  });
}
