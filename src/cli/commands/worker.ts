import type { Command } from "commander";
import { describeConfig, loadConfig } from "../../config/config.js";
import { loadTaskConfig } from "../../config/task-config.js";
import { createLogger } from "../../observability/logger.js";
import { openCore } from "../../runtime/core.js";
import { VERSION } from "../../version.js";
import { addConfigOptions, configFlags } from "../config-options.js";

/**
 * `stackl worker`: a pool of task workers sharing the work queue with every other worker. Stateless: scale by running
 * more. SIGTERM/SIGINT drains: running tasks get STACKL_SHUTDOWN_GRACE to finish, then are handed back (pending
 * again, never dropped); a second signal forces the exit.
 */
export function register(program: Command): void {
  const command = program
    .command("worker")
    .description("run a pool of task workers (consumes the task queue; scale by running more)");
  addConfigOptions(command, [
    "logLevel",
    "databaseUrl",
    "dataDir",
    "natsUrl",
    "workerConcurrency",
    "replicaName",
    "shutdownGraceMs",
  ]);
  command.addHelpText(
    "after",
    "\nTask system settings (environment): STACKL_TASK_LEASE, STACKL_TASK_MAX_DELIVER, STACKL_TASK_RETRY_BASE,\n" +
      "STACKL_TASK_RETRY_CAP, STACKL_SWEEP_PERIOD, STACKL_REPUBLISH_AFTER, STACKL_WORK_QUEUE.",
  );
  command.action(async () => {
    const config = loadConfig({ flags: configFlags(command) });
    const tasks = loadTaskConfig();
    const logger = createLogger({ level: config.logLevel, base: { replica: config.replicaName } });
    logger.info({ version: VERSION, role: "worker", config: describeConfig(config), tasks }, "stackl worker starting");
    const stop = new AbortController();
    let forced = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (!stop.signal.aborted) {
        logger.info({ signal }, "draining (send the signal again to force)");
        stop.abort();
      } else if (!forced) {
        forced = true;
        logger.warn({ signal }, "forcing exit");
        process.exit(1);
      }
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    const core = await openCore(config, logger, stop.signal, { relayListens: false });
    await core.startWorkers(config.workerConcurrency);
    logger.info({ queue: tasks.queue, concurrency: config.workerConcurrency }, "stackl worker running");
    if (!stop.signal.aborted) {
      await new Promise<void>((resolve) => stop.signal.addEventListener("abort", () => resolve(), { once: true }));
    }
    await core.close(config.shutdownGraceMs);
    logger.info("stackl worker stopped");
  });
}
