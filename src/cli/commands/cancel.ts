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
import { stateText as instanceStateText } from "../output/stack-instances.js";
import { isTerminal, stateColor, taskJson, taskStateName } from "../output/tasks.js";
import { getInstance } from "./instances.js";
import { registerCancelJob } from "./jobs.js";
import { WAIT_MARGIN_MS } from "./task.js";

interface CancelTaskOptions {
  reason?: string;
  wait?: number;
  output?: "text" | "json";
  server?: string;
}

/** `stackl cancel task ID`: requests cancellation (idempotent), optionally waiting for the task to stop. */
export function register(program: Command): void {
  const cancel = program
    .command("cancel")
    .description(
      "cancel running work (`stackl cancel task ID`, `stackl cancel job ID`, `stackl cancel instance NAME`)",
    );
  registerCancelJob(cancel);
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

  const instance = cancel
    .command("instance")
    .description(
      "cancel the current run of a stack instance (its task); pending steps are skipped, running jobs stopped",
    )
    .argument("<name>", "stack instance name")
    .option("--reason <text>", "why, recorded on the task")
    .option(
      "--wait <duration>",
      "wait up to this long for the run to stop (e.g. 30s); exit 1 if it is still running then",
      parseDurationArgument,
    )
    .addOption(outputOption(["text", "json"], "text"));
  addClientOptions(instance);
  instance.action((name: string, opts: CancelTaskOptions) =>
    runClientCommand(instance, (ctx) => cancelInstance(ctx, name, opts)),
  );
}

/** CancelTask of the instance's current (or last) run. */
async function cancelInstance(ctx: CommandContext, name: string, opts: CancelTaskOptions): Promise<number> {
  const current = await getInstance(ctx, name);
  if (current.taskId === "") {
    if (opts.output === "json") ctx.print("{}\n");
    else ctx.print(`stack instance ${name} has no run to cancel\n`);
    return EXIT_OK;
  }
  const id = current.taskId;
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
    if (task.state === TaskState.CANCELLED) ctx.print(`run of stack instance ${name} ${state} (task ${id})\n`);
    else if (isTerminal(task.state)) {
      ctx.print(
        `the last run of stack instance ${name} had already finished (${state}, task ${id}); nothing to cancel\n`,
      );
    } else {
      ctx.print(
        `cancellation requested for the run of stack instance ${name} (task ${id}, ${state}); ` +
          `follow it with: stackl get instance ${name} -w\n`,
      );
    }
    if (isTerminal(task.state) && waitMs > 0) {
      const after = await getInstance(ctx, name);
      ctx.print(`stack instance ${name}: ${instanceStateText(after, ctx.style)}\n`);
    }
  }
  if (waitMs > 0 && !isTerminal(task.state)) {
    ctx.warn(
      `${ctx.errStyle.red("error:")} the run of ${name} (task ${id}) is still ${taskStateName(task.state)} after ${formatDuration(waitMs)}\n`,
    );
    return EXIT_FAILURE;
  }
  return EXIT_OK;
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
