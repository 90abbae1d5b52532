import { Command, CommanderError } from "commander";
import { ConfigError } from "../config/config-error.js";
import { VERSION } from "../version.js";
import { register as registerAgents } from "./commands/agents.js";
import { register as registerApply } from "./commands/apply.js";
import { register as registerCancel } from "./commands/cancel.js";
import { register as registerCreate } from "./commands/create.js";
import { register as registerDelete } from "./commands/delete.js";
import { register as registerDev } from "./commands/dev.js";
import { register as registerEdit } from "./commands/edit.js";
import { register as registerGet } from "./commands/get.js";
import { register as registerHistory } from "./commands/history.js";
import { registerRetry } from "./commands/instances.js";
import { register as registerJobs } from "./commands/jobs.js";
import { register as registerLogs } from "./commands/logs.js";
import { register as registerOutputs } from "./commands/outputs.js";
import { register as registerPlan } from "./commands/plan.js";
import { register as registerRestore } from "./commands/restore.js";
import { register as registerServe } from "./commands/serve.js";
import { register as registerTask } from "./commands/task.js";
import { register as registerTasks } from "./commands/tasks.js";
import { register as registerToken } from "./commands/token.js";
import { register as registerUpdate } from "./commands/update.js";
import { register as registerVersion } from "./commands/version.js";
import { register as registerWorker } from "./commands/worker.js";

/** Exit codes of `stackl`. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
/** Bad configuration or usage: nothing was started. */
export const EXIT_CONFIG = 2;

/**
 * Every command, in `--help` order. A command module exports `register(program)`; client commands (`apply`, `get`,
 * …) are added here the same way and talk to the server through `client.ts` only.
 */
const COMMANDS: readonly ((program: Command) => void)[] = [
  registerServe,
  registerWorker,
  registerDev,
  registerApply,
  registerPlan,
  registerCreate,
  registerUpdate,
  registerGet,
  registerEdit,
  registerDelete,
  registerOutputs,
  registerRetry,
  registerHistory,
  registerRestore,
  registerTasks,
  registerTask,
  registerCancel,
  registerJobs,
  registerLogs,
  registerAgents,
  registerToken,
  registerVersion,
];

export function createProgram(): Command {
  const program = new Command("stackl")
    .description("STACKL: application orchestration control plane")
    .version(VERSION, "-V, --version", "print the version")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  for (const register of COMMANDS) register(program);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs `stackl` with `argv` (as in `process.argv`) and returns the exit code. Errors are printed to stderr. */
export async function runCli(argv: readonly string[]): Promise<number> {
  process.exitCode = undefined;
  try {
    await createProgram().parseAsync([...argv]);
    return typeof process.exitCode === "number" ? process.exitCode : EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 1 ? EXIT_CONFIG : err.exitCode;
    if (err instanceof ConfigError) {
      process.stderr.write(`stackl: configuration error:\n  ${err.message.split("\n").join("\n  ")}\n`);
      return EXIT_CONFIG;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`stackl: ${message}\n`);
    if (process.env.STACKL_DEBUG === "1" && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return EXIT_FAILURE;
  }
}
