import { setTimeout as sleep } from "node:timers/promises";
import { create, toJson } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { type Command, InvalidArgumentError, Option } from "commander";
import { ListTasksResponseSchema, type Task } from "../../../gen/stackl/v1/tasks_pb.js";
import { addClientOptions } from "../client.js";
import { parseNonNegativeInt } from "../output/arguments.js";
import {
  type CommandContext,
  EXIT_OK,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
  UsageError,
} from "../output/command-context.js";
import { renderError, rpcFailureOf } from "../output/errors.js";
import { TASK_STATE_NAMES, type TaskStateName, taskStateName, taskStateToProto, tasksTable } from "../output/tasks.js";
import { formatClock } from "../output/time.js";

/** Tasks shown when --limit is not given. */
export const DEFAULT_TASK_LIMIT = 100;
/** How often `stackl tasks -w` lists again. */
export const WATCH_INTERVAL_MS = 1_000;
/** Tasks per ListTasks page. */
const PAGE_SIZE = 500;

interface TasksOptions {
  watch?: boolean;
  state?: TaskStateName[];
  type?: string;
  stackInstance?: string;
  limit?: number;
  output?: "table" | "json";
  server?: string;
}

/** `stackl tasks [-w]`: the newest tasks as a table, optionally kept live. */
export function register(program: Command): void {
  const command = program
    .command("tasks")
    .description("list tasks, newest first (ID, TYPE, STATE, ATTEMPTS, AGE, ERROR)")
    .option("-w, --watch", `keep the table live (re-listed every ${WATCH_INTERVAL_MS / 1000} s) until Ctrl-C`)
    .addOption(
      new Option(
        "--state <state>",
        `only tasks in these states (repeatable, comma-separated: ${TASK_STATE_NAMES.join(", ")})`,
      ).argParser(parseStates),
    )
    .option("--type <type>", "only tasks of this type, e.g. system.sleep or stack_instance.create")
    .option("--stack-instance <name>", "only tasks working on this stack instance")
    .option("--limit <n>", `show at most N tasks (default ${DEFAULT_TASK_LIMIT}; 0 = all)`, parseNonNegativeInt)
    .addOption(outputOption(["table", "json"], "table"));
  addClientOptions(command);
  command.action((opts: TasksOptions) => runClientCommand(command, (ctx) => tasks(ctx, opts)));
}

function parseStates(text: string, previous: TaskStateName[] = []): TaskStateName[] {
  const out = [...previous];
  for (const part of text.split(",")) {
    const name = part.trim().toLowerCase().replace(/-/g, "_");
    if (name === "") continue;
    if (!(TASK_STATE_NAMES as readonly string[]).includes(name)) {
      throw new InvalidArgumentError(
        `unknown task state ${JSON.stringify(part.trim())}; expected ${TASK_STATE_NAMES.join(", ")}`,
      );
    }
    if (!out.includes(name as TaskStateName)) out.push(name as TaskStateName);
  }
  return out;
}

async function tasks(ctx: CommandContext, opts: TasksOptions): Promise<number> {
  const limit =
    opts.limit === undefined ? DEFAULT_TASK_LIMIT : opts.limit === 0 ? Number.POSITIVE_INFINITY : opts.limit;
  const list = (): Promise<{ tasks: Task[]; more: boolean }> => listTasks(ctx, opts, limit);
  if (opts.watch === true) {
    if (opts.output === "json") throw new UsageError("--watch prints a table; leave out -o json");
    return watch(ctx, list);
  }
  const { tasks: found, more } = await list();
  if (opts.output === "json") {
    const json = toJson(ListTasksResponseSchema, create(ListTasksResponseSchema, { tasks: found }));
    ctx.print(`${JSON.stringify(json, null, 2)}\n`);
    return EXIT_OK;
  }
  if (found.length === 0) {
    ctx.warn("No tasks found.\n");
    return EXIT_OK;
  }
  ctx.print(tasksTable(found, ctx.now(), ctx.style));
  if (more) ctx.warn(ctx.errStyle.dim(`(the newest ${found.length} shown; --limit 0 shows all)\n`));
  return EXIT_OK;
}

async function listTasks(
  ctx: CommandContext,
  opts: TasksOptions,
  limit: number,
): Promise<{ tasks: Task[]; more: boolean }> {
  const found: Task[] = [];
  let pageToken = "";
  do {
    const page = await ctx.clients.tasks.listTasks(
      {
        states: (opts.state ?? []).map(taskStateToProto),
        type: opts.type ?? "",
        stackInstance: opts.stackInstance ?? "",
        pageSize: Math.min(PAGE_SIZE, limit - found.length + 1),
        pageToken,
      },
      { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
    );
    found.push(...page.tasks);
    pageToken = page.nextPageToken;
  } while (pageToken !== "" && found.length <= limit);
  return { tasks: found.slice(0, limit), more: found.length > limit || pageToken !== "" };
}

/**
 * Re-lists every second until Ctrl-C (exit 0). On a terminal the screen is redrawn each time (ages move); otherwise
 * a new table is printed only when a task appeared or changed state, attempts or error.
 */
async function watch(ctx: CommandContext, list: () => Promise<{ tasks: Task[] }>): Promise<number> {
  const live = ctx.out.isTTY === true;
  let last = "";
  let lastError = "";
  while (!ctx.signal.aborted) {
    try {
      const { tasks: found } = await list();
      lastError = "";
      const now = ctx.now();
      const table = found.length === 0 ? "No tasks found.\n" : tasksTable(found, now, ctx.style);
      if (live) {
        ctx.print(
          `\u001b[H\u001b[2J${ctx.style.dim(`every ${WATCH_INTERVAL_MS / 1000}s: stackl tasks   ${formatClock(now)}`)}\n\n${table}`,
        );
      } else {
        const signature = found
          .map((t) => `${t.id} ${taskStateName(t.state)} ${t.attempts} ${t.error?.message ?? ""}`)
          .join("\n");
        if (signature !== last) ctx.print(`${last === "" ? "" : "\n"}${ctx.style.dim(formatClock(now))}\n${table}`);
        last = signature;
      }
    } catch (err) {
      if (ctx.signal.aborted) break;
      const failure = rpcFailureOf(err);
      if (failure?.code !== Code.Unavailable && failure?.code !== Code.DeadlineExceeded) throw err;
      const text = renderError(err, { server: ctx.server, style: ctx.errStyle });
      if (text !== lastError) ctx.warn(`${text}(retrying every ${WATCH_INTERVAL_MS / 1000} s; Ctrl-C to stop)\n`);
      lastError = text;
    }
    try {
      await sleep(WATCH_INTERVAL_MS, undefined, { signal: ctx.signal });
    } catch {
      break; // Ctrl-C
    }
  }
  return EXIT_OK;
}
