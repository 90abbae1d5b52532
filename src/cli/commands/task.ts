import type { JsonObject } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type Command, InvalidArgumentError, Option } from "commander";
import { type Task, TaskState } from "../../../gen/stackl/v1/tasks_pb.js";
import { formatDuration } from "../../config/duration.js";
import { addClientOptions } from "../client.js";
import { parseDurationArgument, parseNonNegativeInt, parsePositiveInt } from "../output/arguments.js";
import {
  type CommandContext,
  EXIT_FAILURE,
  EXIT_OK,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
} from "../output/command-context.js";
import { toYaml } from "../output/documents.js";
import { errorText, isTerminal, taskDetails, taskJson, taskStateName, transitionLine } from "../output/tasks.js";
import { formatClock } from "../output/time.js";

/** Extra time the client allows an RPC beyond the server-side wait it asked for. */
export const WAIT_MARGIN_MS = 10_000;

type TaskOutput = "text" | "yaml" | "json";

interface TaskOptions {
  watch?: boolean;
  output?: TaskOutput;
  server?: string;
}

interface RunOptions {
  ms?: number;
  fail?: "retryable" | "terminal";
  input?: JsonObject;
  queue?: string;
  maxAttempts?: number;
  wait?: number;
  watch?: boolean;
  quiet?: boolean;
  output?: TaskOutput;
  server?: string;
}

/** `stackl task ID [-w]` and `stackl task run TYPE`. */
export function register(program: Command): void {
  const command = program
    .command("task")
    .description("show a task, or follow it until it finishes (-w); `task run` starts a diagnostic task")
    .argument("<id>", "task id (see `stackl tasks`)")
    .option("-w, --watch", "stream the task's state changes until it finishes; exit 0 only if it succeeded")
    .addOption(outputOption(["text", "yaml", "json"], "text; with -w, json prints one JSON line per change"))
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  stackl task 0190f1c2-…            # details",
        "  stackl task 0190f1c2-… -w         # follow until it finishes",
        "  stackl task run system.sleep --ms 100 --wait 30s",
      ].join("\n"),
    );
  addClientOptions(command);
  command.action((id: string, opts: TaskOptions) =>
    runClientCommand(command, (ctx) =>
      opts.watch === true ? follow(ctx, id, opts.output ?? "text") : show(ctx, id, opts),
    ),
  );

  const run = command
    .command("run")
    .description("run a built-in diagnostic task (system.*) through the whole task path (row, bus, worker)")
    .argument("<type>", "task type, e.g. system.sleep")
    .option("--ms <n>", "system.sleep: how long to sleep, in milliseconds", parseNonNegativeInt)
    .addOption(new Option("--fail <how>", "system.sleep: fail after sleeping").choices(["retryable", "terminal"]))
    .option("--input <json>", "the task's input as a JSON object (--ms and --fail are added to it)", parseJsonObject)
    .option("--queue <name>", "worker pool queue (server default: default)")
    .option("--max-attempts <n>", "attempts before the task fails (server default: 5, at most 20)", parsePositiveInt)
    .option(
      "--wait <duration>",
      "wait up to this long for the task to finish (e.g. 30s); exit 1 unless it succeeded",
      parseDurationArgument,
    )
    .option("-q, --quiet", "print only the task id (with -w: nothing; the exit code tells)")
    // -w, -o and --server are the options of `task` (commander hands them to the parent, wherever they appear).
    .configureHelp({ showGlobalOptions: true });
  run.action((type: string) =>
    runClientCommand(command, (ctx) => runTask(ctx, type, run.optsWithGlobals<RunOptions>())),
  );
}

function parseJsonObject(text: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError("expected a JSON object");
  }
  return value as JsonObject;
}

async function show(ctx: CommandContext, id: string, opts: TaskOptions): Promise<number> {
  const { task } = await ctx.clients.tasks.getTask({ id }, { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS });
  if (task === undefined) throw new Error(`the server returned no task for ${id}`);
  printTask(ctx, task, opts.output ?? "text");
  return EXIT_OK;
}

function printTask(ctx: CommandContext, task: Task, output: TaskOutput): void {
  switch (output) {
    case "text":
      ctx.print(taskDetails(task, ctx.now(), ctx.style));
      break;
    case "yaml":
      ctx.print(toYaml(taskJson(task), "native"));
      break;
    case "json":
      ctx.print(`${JSON.stringify(taskJson(task), null, 2)}\n`);
      break;
    default: {
      const never: never = output;
      throw new Error(`unhandled output ${String(never)}`);
    }
  }
}

/**
 * Streams WatchTask until the task is terminal, printing a timestamped line per transition (or one JSON line per
 * update with `-o json`). Exit 0 when it succeeded, 1 otherwise.
 */
export async function follow(ctx: CommandContext, id: string, output: TaskOutput | "quiet"): Promise<number> {
  let last: Task | undefined;
  const show = (task: Task): void => {
    if (output === "quiet") {
      // exit code only
    } else if (output === "json") {
      ctx.print(`${JSON.stringify(taskJson(task))}\n`);
    } else {
      if (last === undefined) ctx.print(`${ctx.style.bold(`task ${task.id}`)} (${task.type})\n`);
      const line = transitionLine(last, task, ctx.style);
      if (line !== undefined) ctx.print(`${ctx.style.dim(formatClock(ctx.now()))}  ${line}\n`);
    }
    last = task;
  };
  for await (const { task } of ctx.clients.tasks.watchTask({ id }, { signal: ctx.signal })) {
    if (task === undefined) continue;
    show(task);
    if (isTerminal(task.state)) break;
  }
  if (last === undefined || !isTerminal(last.state)) {
    // The stream ended early (server restart, proxy timeout): look once more before giving up.
    const { task } = await ctx.clients.tasks.getTask({ id }, { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS });
    if (task !== undefined) show(task);
  }
  if (last === undefined || !isTerminal(last.state)) {
    ctx.warn(
      `${ctx.errStyle.red("error:")} the server ended the watch before task ${id} finished ` +
        `(it is ${last === undefined ? "unknown" : taskStateName(last.state)}); run \`stackl task ${id} -w\` again\n`,
    );
    return EXIT_FAILURE;
  }
  if (output !== "json" && output !== "quiet") printOutcome(ctx, last);
  return last.state === TaskState.SUCCEEDED ? EXIT_OK : EXIT_FAILURE;
}

/** The result of a succeeded task, or the error of a failed one. */
function printOutcome(ctx: CommandContext, task: Task): void {
  if (task.state === TaskState.SUCCEEDED) {
    if (task.result !== undefined && Object.keys(task.result).length > 0) {
      ctx.print(`result: ${JSON.stringify(task.result)}\n`);
    }
    return;
  }
  const error = errorText(task);
  if (error !== "" && error !== taskStateName(task.state))
    ctx.warn(`${ctx.errStyle.red("error:")} task ${task.id} ${taskStateName(task.state)}: ${error}\n`);
}

async function runTask(ctx: CommandContext, type: string, opts: RunOptions): Promise<number> {
  const input: JsonObject = { ...(opts.input ?? {}) };
  if (opts.ms !== undefined) input.ms = opts.ms;
  if (opts.fail !== undefined) input.fail = opts.fail;
  const waitMs = opts.wait ?? 0;
  const { task } = await ctx.clients.tasks.runTask(
    {
      type,
      input,
      queue: opts.queue ?? "",
      maxAttempts: opts.maxAttempts ?? 0,
      ...(waitMs > 0 ? { wait: durationFromMs(waitMs) } : {}),
    },
    { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS + waitMs + WAIT_MARGIN_MS },
  );
  if (task === undefined) throw new Error("the server returned no task");
  if (opts.watch === true) {
    if (opts.quiet === true) ctx.print(`${task.id}\n`);
    return follow(ctx, task.id, opts.quiet === true ? "quiet" : (opts.output ?? "text"));
  }
  if (opts.quiet === true) ctx.print(`${task.id}\n`);
  else if ((opts.output ?? "text") !== "text") printTask(ctx, task, opts.output ?? "text");
  else {
    const state = taskStateName(task.state);
    ctx.print(
      `task ${ctx.style.bold(task.id)} ${transitionLine(undefined, task, ctx.style) ?? state} (${task.type})\n`,
    );
    if (isTerminal(task.state)) printOutcome(ctx, task);
    else if (waitMs === 0) ctx.print(ctx.style.dim(`follow it with: stackl task ${task.id} -w\n`));
  }
  if (waitMs === 0) return EXIT_OK;
  if (!isTerminal(task.state)) {
    ctx.warn(
      `${ctx.errStyle.red("error:")} task ${task.id} is still ${taskStateName(task.state)} after ${formatDuration(waitMs)}\n`,
    );
    return EXIT_FAILURE;
  }
  return task.state === TaskState.SUCCEEDED ? EXIT_OK : EXIT_FAILURE;
}
