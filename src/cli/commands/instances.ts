/**
 * What the stack-instance commands share at run time: reading an instance, the live view of its steps (`-w`, on
 * WatchStackInstance), reporting the outcome of a create/update/delete/retry request (`--wait`), and `stackl retry
 * instance NAME`.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { Command } from "commander";
import {
  RetryStackInstanceResponseSchema,
  type StackInstance,
  StackInstanceState,
} from "../../../gen/stackl/v1/stack_instances_pb.js";
import { type Task, TaskState } from "../../../gen/stackl/v1/tasks_pb.js";
import { formatDuration } from "../../config/duration.js";
import { addClientOptions } from "../client.js";
import { parseDurationArgument } from "../output/arguments.js";
import {
  type CommandContext,
  EXIT_FAILURE,
  EXIT_OK,
  type OutputFormat,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
} from "../output/command-context.js";
import { toYaml } from "../output/documents.js";
import { renderError, rpcFailureOf } from "../output/errors.js";
import {
  changeLines,
  instanceJson,
  instanceStateName,
  instanceView,
  instanceYaml,
  isInstanceTerminal,
  liveFrame,
  placementText,
  stateText,
  stepsSummary,
  stepsTable,
} from "../output/stack-instances.js";
import { stripAnsi } from "../output/style.js";
import { errorText, isTerminal, taskStateName } from "../output/tasks.js";
import { formatClock } from "../output/time.js";
import { WAIT_MARGIN_MS } from "./task.js";

/** How long the live view waits for the instance to settle after its run's task ended. */
export const SETTLE_MS = 3_000;
/** Pause before re-opening a watch the server or network closed. */
const REWATCH_MS = 1_000;
/** Stream resets (internal/unknown without an answer from the server) tolerated in a row. */
const MAX_RESETS = 3;

/** `-w`, `--wait` and `-o` of the commands that start a run. */
export interface RunOptions {
  watch?: boolean;
  wait?: number;
  output?: OutputFormat;
}

/** Adds `-w, --watch`, `--wait <duration>` and `-o table|yaml|json`. */
export function addRunOptions(command: Command, what: string): Command {
  return command
    .option("-w, --watch", `show a live view of the steps until the ${what} finishes; exit 0 only if it succeeded`)
    .option(
      "--wait <duration>",
      `wait up to this long (e.g. 10m) for the ${what} to finish; exit 1 unless it succeeded (with -w: stop the live view then)`,
      parseDurationArgument,
    )
    .addOption(outputOption(["table", "yaml", "json"], "table; with -w, json prints one JSON line per change"));
}

/** GetStackInstance. */
export async function getInstance(ctx: CommandContext, name: string): Promise<StackInstance> {
  const { instance } = await ctx.clients.stackInstances.getStackInstance(
    { name },
    { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
  );
  if (instance === undefined) throw new Error(`the server returned no stack instance for ${name}`);
  return instance;
}

/** The instance, or undefined when it does not exist (NOT_FOUND). */
export async function findInstance(ctx: CommandContext, name: string): Promise<StackInstance | undefined> {
  try {
    return await getInstance(ctx, name);
  } catch (err) {
    if (rpcFailureOf(err)?.code === Code.NotFound) return undefined;
    throw err;
  }
}

/** The RPC deadline of a request that asks the server to wait `waitMs`. */
export function waitTimeout(waitMs: number): number {
  return UNARY_TIMEOUT_MS + waitMs + WAIT_MARGIN_MS;
}

/** `wait` for a request: only when the server should wait (not with -w, which watches instead). */
export function serverWait(opts: RunOptions): { wait?: ReturnType<typeof durationFromMs> } {
  return opts.watch !== true && (opts.wait ?? 0) > 0 ? { wait: durationFromMs(opts.wait ?? 0) } : {};
}

/** Prints one instance in `output` (table: details and steps). */
export function printInstance(ctx: CommandContext, instance: StackInstance, output: OutputFormat): void {
  switch (output) {
    case "table":
      ctx.print(instanceView(instance, ctx.now(), ctx.style));
      return;
    case "yaml":
      ctx.print(instanceYaml(instance));
      return;
    case "json":
      ctx.print(`${JSON.stringify(instanceJson(instance), null, 2)}\n`);
      return;
    default: {
      const never: never = output;
      throw new Error(`unhandled output ${String(never)}`);
    }
  }
}

/** 0 for ready and deleted, 1 otherwise. */
export function exitCodeOf(instance: StackInstance): number {
  return instance.state === StackInstanceState.READY || instance.state === StackInstanceState.DELETED
    ? EXIT_OK
    : EXIT_FAILURE;
}

/** The final line of a run: `… is ready` on stdout, or the failure (and what to do next) on stderr. */
export function printOutcome(ctx: CommandContext, instance: StackInstance): void {
  const name = instance.name;
  switch (instance.state) {
    case StackInstanceState.READY:
      ctx.print(`${ctx.style.green("✓")} stack instance ${name} is ${stateText(instance, ctx.style)}\n`);
      return;
    case StackInstanceState.DELETED:
      if (instance.reason === "") ctx.print(`${ctx.style.green("✓")} stack instance ${name} is deleted\n`);
      else {
        ctx.print(`stack instance ${name} is deleted\n`);
        ctx.warn(`${ctx.errStyle.yellow("warning:")} ${instance.reason}\n`);
      }
      return;
    case StackInstanceState.FAILED: {
      ctx.warn(`${ctx.errStyle.red("error:")} stack instance ${name} ${stateText(instance, ctx.errStyle)}\n`);
      const jobs = instance.steps.filter((s) => s.jobId !== "" && s.errorMessage !== "").map((s) => s.jobId);
      if (jobs[0] !== undefined) ctx.warn(ctx.errStyle.dim(`  the job's log: stackl logs ${jobs[0]}\n`));
      ctx.warn(ctx.errStyle.dim(`  run the failed steps again: stackl retry instance ${name} -w\n`));
      return;
    }
    default:
      ctx.warn(`${ctx.errStyle.red("error:")} stack instance ${name} is still ${instanceStateName(instance.state)}\n`);
  }
}

export interface StartedRun {
  /** `create`, `update`, `delete`, `retry`. */
  verb: string;
  name: string;
  task?: Task;
  /** The instance as the response returned it (create, update); fetched otherwise when needed. */
  instance?: StackInstance;
}

/**
 * After a request that started a run: follow it (-w), or report what the server's `--wait` saw, or say how to follow
 * it. Returns the exit code.
 */
export async function finishRun(ctx: CommandContext, run: StartedRun, opts: RunOptions): Promise<number> {
  const output = opts.output ?? "table";
  const taskId = run.task?.id ?? run.instance?.taskId ?? "";
  if (opts.watch === true) {
    if (output === "table") {
      ctx.print(
        `${run.verb} of stack instance ${ctx.style.bold(run.name)} started${taskId === "" ? "" : ` (task ${taskId})`}\n`,
      );
    }
    return followInstance(ctx, run.name, {
      output,
      ...(taskId === "" ? {} : { taskId }),
      ...(opts.wait === undefined ? {} : { timeoutMs: opts.wait }),
    });
  }
  const waitMs = opts.wait ?? 0;
  if (waitMs === 0) {
    if (output === "table") {
      ctx.print(
        `${run.verb} of stack instance ${ctx.style.bold(run.name)} started${taskId === "" ? "" : ` (task ${taskId})`}\n`,
      );
      if (run.instance !== undefined && Object.keys(run.instance.services).length > 0) {
        ctx.print(`${placementText(run.instance)}\n`);
      }
      ctx.print(ctx.style.dim(`follow it with: stackl get instance ${run.name} -w\n`));
    }
    return EXIT_OK;
  }
  if (run.task !== undefined && !isTerminal(run.task.state)) {
    const instance = await findInstance(ctx, run.name);
    if (output === "table" && instance !== undefined) ctx.print(instanceView(instance, ctx.now(), ctx.style));
    ctx.warn(
      `${ctx.errStyle.red("error:")} the ${run.verb} of ${run.name} is still running after ${formatDuration(waitMs)} ` +
        `(task ${run.task.id} ${taskStateName(run.task.state)}); follow it with: stackl get instance ${run.name} -w\n`,
    );
    return EXIT_FAILURE;
  }
  // The response's instance was read when the wait ended; read it again only when the response has none.
  const instance = run.instance ?? (await findInstance(ctx, run.name));
  if (instance === undefined) {
    if (output === "table") ctx.print(`stack instance ${run.name} is gone\n`);
    return EXIT_OK;
  }
  if (output === "table") {
    ctx.print(instanceView(instance, ctx.now(), ctx.style));
    printOutcome(ctx, instance);
  }
  if (!isInstanceTerminal(instance.state) && run.task !== undefined && run.task.state !== TaskState.SUCCEEDED) {
    const error = errorText(run.task);
    ctx.warn(
      `${ctx.errStyle.red("error:")} task ${run.task.id} ${taskStateName(run.task.state)}${error === "" ? "" : `: ${error}`}\n`,
    );
  }
  return exitCodeOf(instance);
}

// ---------------------------------------------------------------------------------------------------------------------
// Live view

export interface FollowOptions {
  output: OutputFormat;
  /** The run to follow (the task a request returned); undefined: whatever run the instance has. */
  taskId?: string;
  /** Stop after this long (exit 1). */
  timeoutMs?: number;
  /** How long the instance may take to settle after its run's task ended. @default SETTLE_MS */
  settleMs?: number;
}

type StopReason = "deadline" | "task-ended";

/**
 * Streams WatchStackInstance until the instance is ready, failed or deleted (for the run `taskId`, or a newer one that
 * superseded it). On a terminal the view is redrawn in place on every change; otherwise (pipes, CI logs) the step
 * table is printed once and then one line per change. `-o json` prints one JSON line per change, `-o yaml` one YAML
 * document. Exit 0 when ready or deleted, 1 when failed (or when the run ended without settling the instance, or the
 * timeout passed). The watch is re-opened when the server or the network closes it.
 */
export async function followInstance(ctx: CommandContext, name: string, opts: FollowOptions): Promise<number> {
  const live = opts.output === "table" && ctx.out.isTTY === true;
  let last: StackInstance | undefined;
  let drawnLines = 0;
  let taskId = opts.taskId;
  let stopReason: StopReason | undefined;
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(ctx.signal.reason);
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  const deadline =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          stopReason ??= "deadline";
          stop.abort(new Error("deadline"));
        }, opts.timeoutMs);

  // The run's task, watched beside the instance: if it ends and the instance does not settle, the view stops.
  let taskWatch: AbortController | undefined;
  let endedTask: Task | undefined;
  const watchTask = (id: string): void => {
    taskWatch?.abort();
    const own = new AbortController();
    taskWatch = own;
    const signal = AbortSignal.any([own.signal, stop.signal]);
    void (async () => {
      try {
        for await (const { task } of ctx.clients.tasks.watchTask({ id }, { signal })) {
          if (task === undefined || !isTerminal(task.state)) continue;
          await sleep(opts.settleMs ?? SETTLE_MS, undefined, { signal });
          endedTask = task;
          stopReason ??= "task-ended";
          stop.abort(new Error("task ended"));
          return;
        }
      } catch {
        // The task watch is a safety net only: the instance stream decides.
      }
    })();
  };
  if (taskId !== undefined) watchTask(taskId);

  const show = (instance: StackInstance): void => {
    switch (opts.output) {
      case "json":
        ctx.print(`${JSON.stringify(instanceJson(instance))}\n`);
        break;
      case "yaml":
        ctx.print(`---\n${instanceYaml(instance)}`);
        break;
      case "table":
        if (live) {
          const frame = liveFrame(instance, { now: ctx.now(), style: ctx.style });
          const lines = screenRows(frame, ctx.out.columns);
          const rows = (ctx.out as { rows?: number }).rows ?? 0;
          // Move up over the previous frame and clear below; when frames are taller than the screen, clear it.
          const erase =
            drawnLines === 0
              ? ""
              : rows > 0 && drawnLines >= rows
                ? "\u001b[H\u001b[2J"
                : `\u001b[${drawnLines}F\u001b[J`;
          ctx.print(`${erase}${frame}`);
          drawnLines = lines;
        } else {
          const newRun =
            last === undefined || last.generation !== instance.generation || last.taskId !== instance.taskId;
          const clock = ctx.style.dim(formatClock(ctx.now()));
          const lines = changeLines(last, instance, ctx.style);
          if (newRun && instance.steps.length > 0) {
            // A new run: its headline, then the whole step table (instead of a line per step).
            ctx.print(`${clock}  ${lines[0] ?? ""}\n`);
            ctx.print(stepsTable(instance.steps, { stages: instance.stages, style: ctx.style }));
          } else {
            for (const line of lines) ctx.print(`${clock}  ${line}\n`);
          }
        }
        break;
      default: {
        const never: never = opts.output;
        throw new Error(`unhandled output ${String(never)}`);
      }
    }
    last = instance;
  };

  /** True when `instance` ends the view. Adopts a newer run that superseded the one followed. */
  const settled = (instance: StackInstance): boolean => {
    if (taskId !== undefined && instance.taskId !== "" && instance.taskId !== taskId) {
      if (opts.output === "table" && !live) {
        ctx.print(
          `${ctx.style.dim(formatClock(ctx.now()))}  a newer request superseded this run; following task ${instance.taskId}\n`,
        );
      }
      taskId = instance.taskId;
      watchTask(taskId);
    }
    return isInstanceTerminal(instance.state);
  };

  let warned: Code | undefined;
  let resets = 0;
  try {
    for (;;) {
      try {
        for await (const { instance } of ctx.clients.stackInstances.watchStackInstance(
          { name },
          { signal: stop.signal },
        )) {
          if (instance === undefined) continue;
          warned = undefined;
          resets = 0;
          show(instance);
          if (settled(instance)) return finish(ctx, instance, opts.output);
        }
        // The server ended the stream before the run finished: watch again.
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        if (stop.signal.aborted) break;
        // The network or a restarting server: watch again. A stream reset (internal/unknown) a few times in a row
        // only: an RPC the server keeps failing is an error to report, not to retry for ever.
        const failure = rpcFailureOf(err);
        const code = failure?.code;
        const network = code === Code.Unavailable || code === Code.DeadlineExceeded;
        const reset = (code === Code.Internal || code === Code.Unknown) && ++resets <= MAX_RESETS;
        if (failure === undefined || failure.fromServer || !(network || reset)) throw err;
        if (code !== warned) {
          const text = renderError(err, { server: ctx.server, style: ctx.errStyle });
          ctx.warn(`${text}(watching again every ${REWATCH_MS / 1000} s; Ctrl-C to stop)\n`);
        }
        warned = code;
      }
      try {
        await sleep(REWATCH_MS, undefined, { signal: stop.signal });
      } catch {
        if (ctx.signal.aborted) ctx.signal.throwIfAborted();
        break;
      }
    }
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    if (deadline !== undefined) clearTimeout(deadline);
    taskWatch?.abort();
    stop.abort();
  }

  // Stopped by the deadline, or because the run's task ended while the instance did not settle: look once more.
  const instance = (await findInstance(ctx, name)) ?? last;
  if (instance !== undefined && (last === undefined || stateKey(instance) !== stateKey(last))) show(instance);
  if (instance !== undefined && isInstanceTerminal(instance.state)) return finish(ctx, instance, opts.output);
  const state = instance === undefined ? "unknown" : instanceStateName(instance.state);
  if (stopReason === "task-ended" && endedTask !== undefined) {
    const error = errorText(endedTask);
    ctx.warn(
      `${ctx.errStyle.red("error:")} the run's task ${endedTask.id} ended (${taskStateName(endedTask.state)}` +
        `${error === "" ? "" : `: ${error}`}) but stack instance ${name} is still ${state}\n`,
    );
  } else {
    ctx.warn(
      `${ctx.errStyle.red("error:")} stack instance ${name} is still ${state} after ` +
        `${formatDuration(opts.timeoutMs ?? 0)}; follow it with: stackl get instance ${name} -w\n`,
    );
  }
  return EXIT_FAILURE;
}

/** Terminal rows `text` (ending in a newline) takes: lines longer than the terminal is wide wrap. */
export function screenRows(text: string, columns: number | undefined): number {
  const lines = text.split("\n").slice(0, -1);
  if (columns === undefined || columns <= 0) return lines.length;
  return lines.reduce((rows, line) => rows + Math.max(1, Math.ceil(stripAnsi(line).length / columns)), 0);
}

function stateKey(instance: StackInstance): string {
  return JSON.stringify([
    instance.state,
    instance.reason,
    instance.generation.toString(),
    instance.steps.map((s) => [s.status, s.jobId, s.errorMessage]),
  ]);
}

function finish(ctx: CommandContext, instance: StackInstance, output: OutputFormat): number {
  if (output === "table") {
    if (ctx.out.isTTY !== true && instance.steps.length > 0) {
      ctx.print(`${ctx.style.dim(stripAnsi(stepsSummary(instance.steps)))}\n`);
    }
    printOutcome(ctx, instance);
  }
  return exitCodeOf(instance);
}

// ---------------------------------------------------------------------------------------------------------------------
// stackl retry instance NAME

interface RetryOptions extends RunOptions {
  server?: string;
}

/** `stackl retry instance NAME [-w] [--wait D]`: runs the failed, cancelled and skipped steps of the last run again. */
export function registerRetry(program: Command): void {
  const retry = program.command("retry").description("run failed work again (`stackl retry instance NAME`)");
  const instance = retry
    .command("instance")
    .description("run the failed and not-yet-run steps of a stack instance's last run again (ready steps are kept)")
    .argument("<name>", "stack instance name")
    .addHelpText(
      "after",
      ["", "Examples:", "  stackl retry instance shop -w", "  stackl retry instance shop --wait 10m"].join("\n"),
    );
  addRunOptions(instance, "run");
  addClientOptions(instance);
  instance.action((name: string, opts: RetryOptions) =>
    runClientCommand(instance, async (ctx) => {
      const response = await ctx.clients.stackInstances.retryStackInstance(
        { name, ...serverWait(opts) },
        { signal: ctx.signal, timeoutMs: waitTimeout(opts.watch === true ? 0 : (opts.wait ?? 0)) },
      );
      const { task } = response;
      if ((opts.output ?? "table") !== "table" && opts.watch !== true) {
        printMessage(ctx, RetryStackInstanceResponseSchema, response, opts.output);
        return (opts.wait ?? 0) === 0 ? EXIT_OK : runExitCode(ctx, name, task);
      }
      return finishRun(ctx, { verb: "retry", name, ...(task === undefined ? {} : { task }) }, opts);
    }),
  );
}

/** `-o json` (canonical proto JSON) or `-o yaml` (proto field names) of a response message. */
export function printMessage<Desc extends DescMessage>(
  ctx: CommandContext,
  schema: Desc,
  message: MessageShape<Desc>,
  output: OutputFormat | undefined,
): void {
  if (output === "yaml") ctx.print(toYaml(toJson(schema, message, { useProtoFieldName: true }), "native"));
  else ctx.print(`${JSON.stringify(toJson(schema, message), null, 2)}\n`);
}

/** With `--wait` and `-o json|yaml`: 0 when the run ended with the instance ready or deleted, 1 otherwise. */
export async function runExitCode(ctx: CommandContext, name: string, task: Task | undefined): Promise<number> {
  if (task !== undefined && !isTerminal(task.state)) return EXIT_FAILURE;
  const instance = await findInstance(ctx, name);
  return instance === undefined ? EXIT_OK : exitCodeOf(instance);
}
