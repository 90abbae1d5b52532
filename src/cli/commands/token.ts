import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import { addClientOptions } from "../client.js";
import { parseDurationArgument, parseLabelSelector } from "../output/arguments.js";
import {
  type CommandContext,
  EXIT_OK,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
} from "../output/command-context.js";
import { formatTimestamp } from "../output/time.js";

interface CreateOptions {
  pool: string;
  ttl?: number;
  name?: string;
  labels?: Record<string, string>;
  output?: "text" | "json";
}

/** `stackl token create --pool P [--ttl 15m]`: a single-use enrollment token for a new agent. */
export function register(program: Command): void {
  const token = program.command("token").description("enrollment tokens for agents (`stackl token create`)");
  const createCmd = token
    .command("create")
    .description("create a single-use enrollment token (shown once; only its hash is stored)")
    .option("--pool <pool>", "pool the enrolled agent joins", "default")
    .option("--ttl <duration>", "validity, at most 1h (default 15m)", parseDurationArgument)
    .option("--name <agent>", "only an agent of this name may use it (also re-enrolls an existing agent)")
    .option("-l, --labels <k=v>", "labels the agent gets (repeatable)", parseLabelSelector)
    .addOption(outputOption(["text", "json"], "text"));
  addClientOptions(createCmd);
  createCmd.action((opts: CreateOptions) => runClientCommand(createCmd, (ctx) => create(ctx, opts)));
}

async function create(ctx: CommandContext, opts: CreateOptions): Promise<number> {
  const res = await ctx.clients.agents.createEnrollmentToken(
    {
      pool: opts.pool,
      agentName: opts.name ?? "",
      labels: opts.labels ?? {},
      ...(opts.ttl === undefined ? {} : { ttl: durationFromMs(opts.ttl) }),
    },
    { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
  );
  const expires = formatTimestamp(res.expireTime);
  if (opts.output === "json") {
    ctx.print(
      `${JSON.stringify({ token: res.token, token_id: res.tokenId, expire_time: expires, pool: opts.pool })}\n`,
    );
    return EXIT_OK;
  }
  ctx.print(`${res.token}\n`);
  ctx.warn(
    ctx.errStyle.dim(
      [
        `token ${res.tokenId} for pool ${opts.pool}${opts.name ? `, agent ${opts.name}` : ""}; single use, expires ${expires}`,
        `start an agent with it:  stackl-agent --server ${ctx.server} --pool ${opts.pool}${opts.name ? ` --name ${opts.name}` : ""} --token <token>`,
        "",
      ].join("\n"),
    ),
  );
  return EXIT_OK;
}
