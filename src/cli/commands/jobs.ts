import { create, type JsonObject, type JsonValue, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { type Command, InvalidArgumentError, Option } from "commander";
import {
  type Job,
  JobSchema,
  type JobSpecSchema,
  JobState,
  ListJobsResponseSchema,
  LogStream,
} from "../../../gen/stackl/v1/jobs_pb.js";
import { addClientOptions } from "../client.js";
import { parseDurationArgument, parseLabelSelector, parseNonNegativeInt } from "../output/arguments.js";
import {
  type CommandContext,
  EXIT_FAILURE,
  EXIT_INTERRUPTED,
  EXIT_OK,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
} from "../output/command-context.js";
import { toYaml } from "../output/documents.js";
import { rpcFailureOf } from "../output/errors.js";
import { PLAIN, type Style } from "../output/style.js";
import { renderFields, renderTable } from "../output/table.js";
import { ageOf, formatElapsed, formatTimestamp, msOf } from "../output/time.js";

/** Job states by their CLI names. */
export const JOB_STATE_NAMES = [
  "pending",
  "offered",
  "running",
  "succeeded",
  "failed",
  "cancelled",
  "timed_out",
] as const;
export type JobStateName = (typeof JOB_STATE_NAMES)[number];

const TO_PROTO: Record<JobStateName, JobState> = {
  pending: JobState.PENDING,
  offered: JobState.OFFERED,
  running: JobState.RUNNING,
  succeeded: JobState.SUCCEEDED,
  failed: JobState.FAILED,
  cancelled: JobState.CANCELLED,
  timed_out: JobState.TIMED_OUT,
};

export function jobStateName(state: JobState): JobStateName | "unknown" {
  const found = Object.entries(TO_PROTO).find(([, v]) => v === state);
  return found === undefined ? "unknown" : (found[0] as JobStateName);
}

export function isJobTerminal(state: JobState): boolean {
  return (
    state === JobState.SUCCEEDED ||
    state === JobState.FAILED ||
    state === JobState.CANCELLED ||
    state === JobState.TIMED_OUT
  );
}

export function jobStateColor(state: JobState, style: Style): (text: string) => string {
  switch (state) {
    case JobState.SUCCEEDED:
      return style.green;
    case JobState.FAILED:
    case JobState.TIMED_OUT:
      return style.red;
    case JobState.CANCELLED:
      return style.yellow;
    case JobState.RUNNING:
    case JobState.OFFERED:
      return style.cyan;
    default:
      return (text) => text;
  }
}

/** `code: message` of a job's error, `` when none. */
export function jobErrorText(j: Job): string {
  if (j.error === undefined || (j.error.code === "" && j.error.message === "")) return "";
  const { code, message } = j.error;
  return code === "" || message === code ? message || code : `${code}: ${message}`;
}

/** ID, TARGET, AGENT, TOOL, STATE, EPOCH, AGE, ERROR. */
export function jobsTable(jobs: readonly Job[], now: number, style: Style = PLAIN): string {
  return renderTable(
    jobs,
    [
      { header: "ID", value: (j) => j.id },
      { header: "TARGET", value: (j) => j.target },
      { header: "AGENT", value: (j) => j.agent || "-" },
      { header: "TOOL", value: (j) => j.spec?.invocation?.tool ?? "" },
      { header: "STATE", value: (j) => jobStateName(j.state), color: (t, j, s) => jobStateColor(j.state, s)(t) },
      { header: "EPOCH", value: (j) => String(j.epoch), align: "right" },
      { header: "AGE", value: (j) => ageOf(j.createTime, now), align: "right" },
      { header: "ERROR", value: (j) => jobErrorText(j), maxWidth: 60, color: (t, _j, s) => s.red(t) },
    ],
    style,
  );
}

/** Every field of one job. */
export function jobDetails(j: Job, now: number, style: Style = PLAIN): string {
  const when = (ts: Job["createTime"]): string => {
    const text = formatTimestamp(ts);
    return text === "" ? "" : `${text} (${ageOf(ts, now)} ago)`;
  };
  const start = msOf(j.startTime);
  const finish = msOf(j.finishTime);
  const took = start !== undefined && finish !== undefined ? `, took ${formatElapsed(finish - start)}` : "";
  const inv = j.spec?.invocation;
  const command = inv?.command.length ? inv.command.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ") : "";
  const secrets = Object.entries(j.spec?.secrets ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  return renderFields(
    [
      ["ID", j.id],
      ["State", jobStateColor(j.state, style)(jobStateName(j.state))],
      ["Target", j.target],
      ["Agent", j.agent],
      ["Tool", inv?.tool ?? ""],
      ["Action", j.spec?.action ?? ""],
      ["Command", command],
      ["Working dir", inv?.workingDir ?? ""],
      ["Secrets", secrets],
      ["Attempt", `${j.attempt} (epoch ${j.epoch})`],
      ["Task", j.taskId],
      ["Step", j.stepId],
      ["Stack instance", j.spec?.stackInstance ?? ""],
      ["Created", when(j.createTime)],
      ["Started", when(j.startTime)],
      ["Finished", `${when(j.finishTime)}${took}`],
      ["Cancel requested", when(j.cancelRequestedTime)],
      ["Exit code", isJobTerminal(j.state) && j.state !== JobState.SUCCEEDED ? String(j.exitCode) : ""],
      ["Log chunks", j.lastLogSeq > 0n ? String(j.lastLogSeq) : ""],
      ["Outputs", j.outputs !== undefined && Object.keys(j.outputs).length > 0 ? JSON.stringify(j.outputs) : ""],
      ["Error", style.red(jobErrorText(j))],
    ],
    style,
  );
}

export function jobJson(j: Job): JsonValue {
  return toJson(JobSchema, j);
}

/** Exit code of `stackl run` / `stackl job -w` for a finished job: 0, the job's exit code, or 1. */
export function exitCodeOf(j: Job): number {
  if (j.state === JobState.SUCCEEDED) return EXIT_OK;
  if (j.state === JobState.FAILED && j.exitCode > 0) return Math.min(j.exitCode, 255);
  return EXIT_FAILURE;
}

function parseStates(text: string, previous: JobStateName[] = []): JobStateName[] {
  const out = [...previous];
  for (const part of text.split(",")) {
    const name = part.trim().toLowerCase().replace(/-/g, "_");
    if (name === "") continue;
    if (!(JOB_STATE_NAMES as readonly string[]).includes(name)) {
      throw new InvalidArgumentError(
        `unknown job state ${JSON.stringify(part.trim())}; expected ${JOB_STATE_NAMES.join(", ")}`,
      );
    }
    if (!out.includes(name as JobStateName)) out.push(name as JobStateName);
  }
  return out;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

interface JobsOptions {
  state?: JobStateName[];
  target?: string;
  agent?: string;
  task?: string;
  stackInstance?: string;
  limit?: number;
  output?: "table" | "json";
}

interface JobOptions {
  output?: "text" | "yaml" | "json";
  watch?: boolean;
}

interface RunOptions {
  target: string;
  tool: string;
  env?: Record<string, string>;
  secret?: string[];
  param?: Record<string, string>;
  workdir?: string;
  timeout?: number;
  lostAfter?: number;
  detach?: boolean;
  quiet?: boolean;
}

/** `stackl jobs`, `stackl job ID [-w]`, `stackl job retry ID`, `stackl run --target T -- cmd args…`. */
export function register(program: Command): void {
  const list = program
    .command("jobs")
    .description("list jobs, newest first (ID, TARGET, AGENT, TOOL, STATE, EPOCH, AGE, ERROR)")
    .addOption(
      new Option("--state <state>", `only jobs in these states (repeatable: ${JOB_STATE_NAMES.join(", ")})`).argParser(
        parseStates,
      ),
    )
    .option("--target <target>", "only jobs routed to this agent or pool")
    .option("--agent <name>", "only jobs held by this agent")
    .option("--task <id>", "only jobs started by this task")
    .option("--stack-instance <name>", "only jobs of this stack instance")
    .option("--limit <n>", "show at most N jobs (default 100; 0 = all)", parseNonNegativeInt)
    .addOption(outputOption(["table", "json"], "table"));
  addClientOptions(list);
  list.action((opts: JobsOptions) => runClientCommand(list, (ctx) => listJobs(ctx, opts)));

  const show = program
    .command("job")
    .description("show a job (-w: follow its state until it finishes); `job retry ID` runs it again")
    .argument("<id>", "job id (see `stackl jobs`)")
    .option("-w, --watch", "print its logs and wait until it finishes; exit with the job's exit code")
    .addOption(outputOption(["text", "yaml", "json"], "text"));
  addClientOptions(show);
  show.action((id: string, opts: JobOptions) =>
    runClientCommand(show, (ctx) => (opts.watch === true ? followJob(ctx, id, 0n, false) : showJob(ctx, id, opts))),
  );
  const retry = show
    .command("retry")
    .description("run a failed, cancelled or timed-out job again (new attempt, epoch + 1)")
    .argument("<id>", "job id");
  retry.action((id: string) =>
    runClientCommand(show, async (ctx) => {
      const { job } = await ctx.clients.jobs.retryJob({ id }, { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS });
      if (job === undefined) throw new Error(`the server returned no job for ${id}`);
      ctx.print(`job ${job.id} ${jobStateName(job.state)} again (attempt ${job.attempt + 1} next)\n`);
      return EXIT_OK;
    }),
  );

  const run = program
    .command("run")
    .description("run a command on an agent or pool as a job and print its output live (RunJob)")
    .requiredOption("--target <target>", "agent name or pool (the local agent of `stackl dev` is `common`)")
    .option("--tool <tool>", "handler: shell, tofu, terraform, ansible, mock", "shell")
    .option("-e, --env <k=v>", "environment variable for the command (repeatable)", parseLabelSelector)
    .option(
      "--secret <name=ref>",
      "secret by reference, resolved on the agent: NAME=env:VAR or NAME=file:/path",
      collect,
    )
    .option("-p, --param <k=v>", "parameter (STACKL_PARAM_<K>; repeatable)", parseLabelSelector)
    .option("--workdir <dir>", "working directory on the agent")
    .option("--timeout <duration>", "job timeout (default 1h)", parseDurationArgument)
    .option(
      "--lost-after <duration>",
      "how long the job waits for a disconnected agent (default 5m)",
      parseDurationArgument,
    )
    .option("-d, --detach", "print the job id and return without following it")
    .option("-q, --quiet", "print only the command's output (no [stackl-agent] lines)")
    .argument("<command...>", "the command and its arguments (after --); never run through a shell")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  stackl run --target common -- uname -a",
        "  stackl run --target linux --secret TOKEN=env:API_TOKEN -- sh -c 'curl -H \"X: $STACKL_SECRET_TOKEN\" …'",
        "",
        "Ctrl-C cancels the job. The exit code is the job's (0 when it succeeded, 1 when it did not finish).",
      ].join("\n"),
    );
  addClientOptions(run);
  run.action((command: string[], opts: RunOptions) => runClientCommand(run, (ctx) => runJob(ctx, command, opts)));
}

async function listJobs(ctx: CommandContext, opts: JobsOptions): Promise<number> {
  const limit = opts.limit === undefined ? 100 : opts.limit === 0 ? Number.POSITIVE_INFINITY : opts.limit;
  const found: Job[] = [];
  let pageToken = "";
  do {
    const page = await ctx.clients.jobs.listJobs(
      {
        states: (opts.state ?? []).map((s) => TO_PROTO[s]),
        target: opts.target ?? "",
        agent: opts.agent ?? "",
        taskId: opts.task ?? "",
        stackInstance: opts.stackInstance ?? "",
        pageSize: Math.min(500, limit - found.length + 1),
        pageToken,
      },
      { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
    );
    found.push(...page.jobs);
    pageToken = page.nextPageToken;
  } while (pageToken !== "" && found.length <= limit);
  const shown = found.slice(0, limit);
  if (opts.output === "json") {
    ctx.print(
      `${JSON.stringify(toJson(ListJobsResponseSchema, create(ListJobsResponseSchema, { jobs: shown })), null, 2)}\n`,
    );
    return EXIT_OK;
  }
  if (shown.length === 0) {
    ctx.warn("No jobs found.\n");
    return EXIT_OK;
  }
  ctx.print(jobsTable(shown, ctx.now(), ctx.style));
  if (found.length > shown.length || pageToken !== "") {
    ctx.warn(ctx.errStyle.dim(`(the newest ${shown.length} shown; --limit 0 shows all)\n`));
  }
  return EXIT_OK;
}

async function showJob(ctx: CommandContext, id: string, opts: JobOptions): Promise<number> {
  const { job } = await ctx.clients.jobs.getJob({ id }, { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS });
  if (job === undefined) throw new Error(`the server returned no job for ${id}`);
  switch (opts.output ?? "text") {
    case "text":
      ctx.print(jobDetails(job, ctx.now(), ctx.style));
      break;
    case "yaml":
      ctx.print(toYaml(jobJson(job), "native"));
      break;
    case "json":
      ctx.print(`${JSON.stringify(jobJson(job), null, 2)}\n`);
      break;
  }
  return EXIT_OK;
}

/**
 * Prints a job's log from `afterSeq` and follows it until the job is terminal (stdout chunks to stdout, stderr and
 * agent lines to stderr), resuming after a dropped stream; then returns the job's exit code.
 */
export async function followJob(ctx: CommandContext, id: string, afterSeq: bigint, quiet: boolean): Promise<number> {
  let after = afterSeq;
  for (let attempt = 0; ; attempt++) {
    try {
      for await (const { chunk } of ctx.clients.jobs.streamJobLogs(
        { id, afterSeq: after, follow: true },
        { signal: ctx.signal },
      )) {
        if (chunk === undefined) continue;
        after = chunk.seq;
        writeChunk(ctx, chunk.stream, chunk.data, quiet);
      }
      break;
    } catch (err) {
      const failure = rpcFailureOf(err);
      if (
        ctx.signal.aborted ||
        attempt >= 5 ||
        (failure?.code !== Code.Unavailable && failure?.code !== Code.Internal)
      ) {
        throw err;
      }
      await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
    }
  }
  const { job } = await ctx.clients.jobs.getJob({ id }, { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS });
  if (job === undefined) throw new Error(`the server returned no job for ${id}`);
  if (!isJobTerminal(job.state)) {
    ctx.warn(`${ctx.errStyle.red("error:")} the log stream ended while job ${id} is ${jobStateName(job.state)}\n`);
    return EXIT_FAILURE;
  }
  if (job.state !== JobState.SUCCEEDED) {
    ctx.warn(`${ctx.errStyle.red("error:")} job ${id} ${jobStateName(job.state)}: ${jobErrorText(job)}\n`);
  }
  return exitCodeOf(job);
}

function writeChunk(ctx: CommandContext, stream: LogStream, data: Uint8Array, quiet: boolean): void {
  const text = Buffer.from(data).toString("utf8");
  switch (stream) {
    case LogStream.STDOUT:
      ctx.print(text);
      break;
    case LogStream.STDERR:
      ctx.warn(text);
      break;
    default:
      if (!quiet) ctx.warn(ctx.errStyle.dim(text));
  }
}

async function runJob(ctx: CommandContext, command: string[], opts: RunOptions): Promise<number> {
  const secrets: Record<string, string> = {};
  for (const s of opts.secret ?? []) {
    const eq = s.indexOf("=");
    if (eq <= 0) throw new InvalidArgumentError(`--secret: expected NAME=REFERENCE, got ${JSON.stringify(s)}`);
    secrets[s.slice(0, eq)] = s.slice(eq + 1);
  }
  const spec: MessageInitShape<typeof JobSpecSchema> = {
    action: "create",
    invocation: {
      tool: opts.tool,
      command,
      env: opts.env ?? {},
      workingDir: opts.workdir ?? "",
    },
    parameters: (opts.param ?? {}) as JsonObject,
    secrets,
    ...(opts.timeout === undefined ? {} : { timeout: durationFromMs(opts.timeout) }),
    ...(opts.lostAfter === undefined ? {} : { lostAfter: durationFromMs(opts.lostAfter) }),
  };
  const { job } = await ctx.clients.jobs.runJob(
    { target: opts.target, spec },
    { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
  );
  if (job === undefined) throw new Error("the server returned no job");
  if (opts.detach === true) {
    ctx.print(`${job.id}\n`);
    return EXIT_OK;
  }
  if (opts.quiet !== true) ctx.warn(ctx.errStyle.dim(`job ${job.id} → ${opts.target}\n`));
  try {
    return await followJob(ctx, job.id, 0n, opts.quiet === true);
  } catch (err) {
    if (!ctx.signal.aborted) throw err;
    const cancelled = await ctx.clients.jobs
      .cancelJob({ id: job.id, reason: "interrupted (Ctrl-C) in stackl run" }, { timeoutMs: 5_000 })
      .then(() => true)
      .catch(() => false);
    ctx.warn(
      cancelled
        ? `\ninterrupted: cancellation of job ${job.id} requested (stackl job ${job.id})\n`
        : `\ninterrupted: could not cancel job ${job.id}; run \`stackl cancel job ${job.id}\`\n`,
    );
    return EXIT_INTERRUPTED;
  }
}

interface CancelJobOptions {
  grace?: number;
  reason?: string;
  wait?: number;
  output?: "text" | "json";
}

/** Adds `job` to `stackl cancel`: `stackl cancel job ID [--grace 10s] [--wait 30s]`. */
export function registerCancelJob(cancel: Command): void {
  const job = cancel
    .command("job")
    .description(
      "cancel a job: SIGTERM to its processes, SIGKILL after --grace; ends `cancelled` once the agent confirms",
    )
    .argument("<id>", "job id (see `stackl jobs`)")
    .option("--grace <duration>", "time between SIGTERM and SIGKILL (default 10s)", parseDurationArgument)
    .option("--reason <text>", "why, recorded on the job")
    .option(
      "--wait <duration>",
      "wait up to this long for the job to stop (e.g. 30s); exit 1 if it is still running then",
      parseDurationArgument,
    )
    .addOption(outputOption(["text", "json"], "text"));
  addClientOptions(job);
  job.action((id: string, opts: CancelJobOptions) => runClientCommand(job, (ctx) => cancelJob(ctx, id, opts)));
}

async function cancelJob(ctx: CommandContext, id: string, opts: CancelJobOptions): Promise<number> {
  const res = await ctx.clients.jobs.cancelJob(
    { id, reason: opts.reason ?? "", ...(opts.grace === undefined ? {} : { grace: durationFromMs(opts.grace) }) },
    { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
  );
  let job = res.job;
  if (job === undefined) throw new Error(`the server returned no job for ${id}`);
  const waitMs = opts.wait ?? 0;
  if (waitMs > 0 && !isJobTerminal(job.state)) {
    // The log stream of a followed job ends when the job is terminal: an event-driven wait.
    const deadline = AbortSignal.any([ctx.signal, AbortSignal.timeout(waitMs)]);
    try {
      for await (const _ of ctx.clients.jobs.streamJobLogs(
        { id, afterSeq: job.lastLogSeq, follow: true },
        { signal: deadline },
      )) {
        // output is not printed here
      }
    } catch (err) {
      if (ctx.signal.aborted) throw err;
    }
    job = (await ctx.clients.jobs.getJob({ id }, { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS })).job ?? job;
  }
  if (opts.output === "json") {
    ctx.print(`${JSON.stringify(jobJson(job), null, 2)}\n`);
  } else {
    const state = jobStateColor(job.state, ctx.style)(jobStateName(job.state));
    if (job.state === JobState.CANCELLED) ctx.print(`job ${id} ${state}\n`);
    else if (isJobTerminal(job.state)) ctx.print(`job ${id} had already finished (${state}); nothing to cancel\n`);
    else ctx.print(`cancellation requested for job ${id} (${state}); follow it with: stackl job ${id} -w\n`);
  }
  if (waitMs > 0 && !isJobTerminal(job.state)) {
    ctx.warn(`${ctx.errStyle.red("error:")} job ${id} is still ${jobStateName(job.state)} after the wait\n`);
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}
