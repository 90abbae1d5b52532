import type { Command } from "commander";
import { LogStream } from "../../../gen/stackl/v1/jobs_pb.js";
import { addClientOptions } from "../client.js";
import { parseNonNegativeInt } from "../output/arguments.js";
import { type CommandContext, EXIT_OK, runClientCommand } from "../output/command-context.js";
import { followJob } from "./jobs.js";

interface LogsOptions {
  follow?: boolean;
  after?: number;
  quiet?: boolean;
  json?: boolean;
}

/** `stackl logs JOB [-f]`: a job's stored log (stdout to stdout, stderr and agent lines to stderr). */
export function register(program: Command): void {
  const command = program
    .command("logs")
    .description("print a job's log; -f follows it until the job finishes")
    .argument("<job>", "job id (see `stackl jobs`)")
    .option("-f, --follow", "keep printing new output until the job finishes; exit with the job's exit code")
    .option("--after <seq>", "only chunks after this sequence number", parseNonNegativeInt)
    .option("-q, --quiet", "leave out the agent's own [stackl-agent] lines")
    .option("--json", "one JSON object per chunk (seq, stream, epoch, time, text)");
  addClientOptions(command);
  command.action((id: string, opts: LogsOptions) => runClientCommand(command, (ctx) => logs(ctx, id, opts)));
}

const STREAM_NAMES: Record<number, string> = {
  [LogStream.STDOUT]: "stdout",
  [LogStream.STDERR]: "stderr",
  [LogStream.SYSTEM]: "system",
};

async function logs(ctx: CommandContext, id: string, opts: LogsOptions): Promise<number> {
  const after = BigInt(opts.after ?? 0);
  if (opts.follow === true && opts.json !== true) return followJob(ctx, id, after, opts.quiet === true);
  for await (const { chunk } of ctx.clients.jobs.streamJobLogs(
    { id, afterSeq: after, follow: opts.follow === true },
    { signal: ctx.signal },
  )) {
    if (chunk === undefined) continue;
    const text = Buffer.from(chunk.data).toString("utf8");
    if (opts.json === true) {
      ctx.print(
        `${JSON.stringify({
          seq: Number(chunk.seq),
          stream: STREAM_NAMES[chunk.stream] ?? "unknown",
          epoch: Number(chunk.epoch),
          time: chunk.time === undefined ? null : new Date(Number(chunk.time.seconds) * 1000 + chunk.time.nanos / 1e6),
          text,
        })}\n`,
      );
    } else if (chunk.stream === LogStream.STDOUT) {
      ctx.print(text);
    } else if (chunk.stream === LogStream.STDERR) {
      ctx.warn(text);
    } else if (opts.quiet !== true) {
      ctx.warn(ctx.errStyle.dim(text));
    }
  }
  return EXIT_OK;
}
