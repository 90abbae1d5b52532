import type { Command } from "commander";
import { DEFAULT_SERVER } from "../../config/client-config.js";
import { type ConfigKey, loadConfig } from "../../config/config.js";
import { addConfigOptions, configFlags } from "../config-options.js";
import { runServer } from "../run-server.js";

/** Settings `dev` offers; the database and the bus are always the embedded ones. */
const DEV_SETTINGS: readonly ConfigKey[] = [
  "host",
  "port",
  "tlsCertFile",
  "tlsKeyFile",
  "logLevel",
  "dataDir",
  "workerConcurrency",
  "maxMessageBytes",
  "maxDeadlineMs",
  "shutdownGraceMs",
  "replicaName",
];

/** `stackl dev` (what `npm start` runs): everything in one process on the embedded store and in-process bus. */
export function register(program: Command): void {
  const command = program
    .command("dev")
    .description("run everything in one process on the embedded database and in-process bus (quick start)")
    .addHelpText(
      "after",
      "\nSTACKL_DATABASE_URL and STACKL_NATS_URL are ignored: dev always uses PGlite under --data-dir and an\n" +
        "in-process bus. JSON logs go to stderr; the address and next steps are printed on stdout.",
    );
  addConfigOptions(command, DEV_SETTINGS);
  command.action(async () => {
    const env = { ...process.env, STACKL_DATABASE_URL: undefined, STACKL_NATS_URL: undefined };
    const config = loadConfig({ env, flags: configFlags(command) });
    const ignored = ["STACKL_DATABASE_URL", "STACKL_NATS_URL"].filter((v) => (process.env[v] ?? "") !== "");
    process.exitCode = await runServer({
      config,
      role: "dev",
      logDestination: process.stderr,
      onReady: (server, startToHealthyMs, logger) => {
        if (ignored.length > 0) logger.warn({ ignored }, "dev ignores these variables (embedded defaults only)");
        const hostPort = server.url.replace(/^https?:\/\//, "");
        const plaintext = server.url.startsWith("http://") ? "-plaintext " : "";
        process.stdout.write(
          [
            `STACKL dev ready at ${server.url} (gRPC, gRPC-Web and Connect on one port), ` +
              `healthy ${(startToHealthyMs / 1000).toFixed(2)} s after process start`,
            `  data:    ${config.dataDir} (embedded database; bus in-process)`,
            `  health:  ${server.url}/healthz   metrics: ${server.url}/metrics`,
            `  next:    grpcurl ${plaintext}${hostPort} list`,
            `           npm run stackl -- get environments${server.url === DEFAULT_SERVER ? "" : ` --server ${server.url}`}`,
            "           npm run stackl -- --help",
            "  stop:    Ctrl-C",
            "",
          ].join("\n"),
        );
      },
    });
  });
}
