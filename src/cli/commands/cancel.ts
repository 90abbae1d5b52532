import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import { TaskState } from "../../../gen/stackl/v1/tasks_pb.js";
import { formatDuration } from "../../config/duration.js";
import { addClientOptions } from "../client.js";
import { parseDurationArgument } from "../output/arguments.js";
import {
  type CommandContext,
  EXIT_FAILURE,
  EXIT_OK,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
} from "../output/command-context.js";
import { isTerminal, stateColor, taskJson, taskStateName } from "../output/tasks.js";
import { WAIT_MARGIN_MS } from "./task.js";

interface CancelTaskOptions {
  reason?: string;
  wait?: number;
  output?: "text" | "json";
  server?: string;
}

/** `stackl cancel task ID`: requests cancellation (idempotent), optionally waiting for the task to stop. */
export function register(program: Command): void {
  const cancel = program.command("cancel").description("cancel running work (`stackl cancel task ID`)");
  const task = cancel
    .command("task")
    .description("request cancellation of a task; a running task's worker is told to stop (idempotent)")
    .argument("<id>", "task id (see `stackl tasks`)")
    .option("--reason <text>", "why, recorded on the task")
    .option(
      "--wait <duration>",
      "wait up to this long for the task to stop (e.g. 30s); exit 1 if it is still running then",
      parseDurationArgument,
    )
    .addOption(outputOption(["text", "json"], "text"));
  addClientOptions(task);
  task.action((id: string, opts: CancelTaskOptions) => runClientCommand(task, (ctx) => cancelTask(ctx, id, opts)));
}

async function cancelTask(ctx: CommandContext, id: string, opts: CancelTaskOptions): Promise<number> {
  const waitMs = opts.wait ?? 0;
  const { task } = await ctx.clients.tasks.cancelTask(
    { id, reason: opts.reason ?? "", ...(waitMs > 0 ? { wait: durationFromMs(waitMs) } : {}) },
    { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS + waitMs + WAIT_MARGIN_MS },
  );
  if (task === undefined) throw new Error(`the server returned no task for ${id}`);
  if (opts.output === "json") {
    ctx.print(`${JSON.stringify(taskJson(task), null, 2)}\n`);
  } else {
    const state = stateColor(task.state, ctx.style)(taskStateName(task.state));
    if (task.state === TaskState.CANCELLED) ctx.print(`task ${id} ${state}\n`);
    else if (isTerminal(task.state)) ctx.print(`task ${id} had already finished (${state}); nothing to cancel\n`);
    else ctx.print(`cancellation requested for task ${id} (${state}); follow it with: stackl task ${id} -w\n`);
  }
  if (waitMs > 0 && !isTerminal(task.state)) {
    ctx.warn(
      `${ctx.errStyle.red("error:")} task ${id} is still ${taskStateName(task.state)} after ${formatDuration(waitMs)}\n`,
    );
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}
