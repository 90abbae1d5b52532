import { mkdirSync, readFileSync } from "node:fs";
import { type CliResult, parseCli } from "./cli.js";
import { availableHandlers, createHandlers } from "./handler-registry.js";
import { createAgentLogger } from "./logger.js";
import { OptionsError } from "./options-error.js";
import { AgentSession } from "./session.js";
import { AGENT_VERSION } from "./version.js";

/**
 * Entry point of `stackl-agent`. Exit codes: 0 after a clean drain (SIGTERM/SIGINT or the server's Drain), 2 for a
 * bad option, 1 for any other start-up failure.
 */
async function main(argv: readonly string[]): Promise<number> {
  let cli: CliResult;
  try {
    cli = parseCli(argv);
  } catch (err) {
    if (err instanceof OptionsError) {
      process.stderr.write(`stackl-agent: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  switch (cli.kind) {
    case "help":
    case "version":
      process.stdout.write(cli.text);
      return 0;
    case "run":
      break;
    default: {
      const unreachable: never = cli;
      throw new Error(`unknown command ${String(unreachable)}`);
    }
  }
  const config = cli.config;
  const logger = createAgentLogger({ agent: config.name, level: config.logLevel });
  let session: AgentSession;
  try {
    const names = config.handlers ?? availableHandlers(config.binaries);
    const handlers = createHandlers(names, config.binaries);
    mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(config.workDir, { recursive: true, mode: 0o700 });
    session = new AgentSession({
      server: config.server,
      name: config.name,
      pool: config.pool,
      labels: config.labels,
      capacity: config.capacity,
      handlers,
      enrollmentToken: config.enrollmentToken,
      stateDir: config.stateDir,
      workDir: config.workDir,
      drainTimeoutMs: config.drainTimeoutMs,
      logger,
      http2Options: config.caFile ? { ca: readFileSync(config.caFile) } : {},
    });
    logger.info(
      {
        version: AGENT_VERSION,
        server: config.server,
        pool: config.pool,
        labels: config.labels,
        capacity: config.capacity,
        handlers: [...handlers.keys()],
        state_dir: config.stateDir,
        work_dir: config.workDir,
      },
      "stackl-agent starting",
    );
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, "cannot start");
    process.stderr.write(`stackl-agent: ${(err as Error).message}\n`);
    return 1;
  }

  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      logger.info({ signal: sig }, "signal: draining (send it again to stop running jobs now)");
      void session.drain(`signal ${sig}`);
    } else {
      logger.warn({ signal: sig }, "second signal: stopping running jobs");
      session.stopJobs(`agent stopped by ${sig}`, 2_000);
    }
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  try {
    await session.run();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, "agent stopped");
    process.stderr.write(`stackl-agent: ${(err as Error).message}\n`);
    return 1;
  }
  logger.info("stackl-agent stopped");
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`stackl-agent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
