import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { type Command, Option } from "commander";
import {
  CreateStackInstanceResponseSchema,
  type StackInstanceSpecSchema,
} from "../../../gen/stackl/v1/stack_instances_pb.js";
import { ErrorInfoSchema } from "../../../gen/stackl/v1/tasks_pb.js";
import { addClientOptions } from "../client.js";
import {
  type CommandContext,
  EXIT_FAILURE,
  EXIT_OK,
  runClientCommand,
  UNARY_TIMEOUT_MS,
  UsageError,
} from "../output/command-context.js";
import { renderError } from "../output/errors.js";
import { planText } from "../output/stack-instances.js";
import { addSpecOptions, type InstanceInput, type InstanceOptionValues, inputFromOptions, specOf } from "./instance.js";
import {
  addRunOptions,
  finishRun,
  printMessage,
  type RunOptions,
  runExitCode,
  serverWait,
  waitTimeout,
} from "./instances.js";
import { templateStages } from "./plan.js";

interface CreateInstanceOptions extends InstanceOptionValues, RunOptions {
  sat?: string;
  sit?: string;
  stackApplicationTemplate?: string;
  stackInfrastructureTemplate?: string;
  server?: string;
}

/** `stackl create instance NAME --sat SAT --sit SIT …`. */
export function register(program: Command): void {
  const create = program.command("create").description("create a stack instance (`stackl create instance NAME`)");
  const command = create
    .command("instance")
    .description("place a stack instance and run its steps (create); -w follows the run live")
    .argument("<name>", "stack instance name")
    .option("--sat <name>", "stack application template (required)")
    .option("--sit <name>", "stack infrastructure template (required)")
    .addOption(hiddenName("--stack-application-template <name>"))
    .addOption(hiddenName("--stack-infrastructure-template <name>"));
  addSpecOptions(command);
  addRunOptions(command, "run");
  command.addHelpText(
    "after",
    [
      "",
      "Exit status: 0 when the request was accepted (with -w or --wait: when the instance became ready), 1 when",
      "placement was refused or the run failed, 2 for bad usage, 130 when interrupted (the run goes on).",
      "",
      "Examples:",
      "  stackl create instance shop --sat webshop --sit eu-platform -w",
      "  stackl create instance shop --sat webshop --sit eu-platform -p app_version=2.5.0 -r web=2 --wait 10m",
      "  stackl create instance shop --sat webshop --sit eu-platform --secret db_password=vault:kv/shop#db",
    ].join("\n"),
  );
  addClientOptions(command);
  command.action((name: string, opts: CreateInstanceOptions) =>
    runClientCommand(command, (ctx) => {
      const sat = opts.sat ?? opts.stackApplicationTemplate;
      const sit = opts.sit ?? opts.stackInfrastructureTemplate;
      if (sat === undefined || sit === undefined) {
        const missing = [sat === undefined ? "--sat" : "", sit === undefined ? "--sit" : ""].filter((m) => m !== "");
        throw new UsageError(`${missing.join(" and ")} ${missing.length === 1 ? "is" : "are"} required`);
      }
      return createInstance(ctx, name, sat, sit, inputFromOptions(opts), opts);
    }),
  );
}

/** The original CLI's long names of --sat and --sit, accepted but not shown. */
function hiddenName(flags: string): Option {
  return new Option(flags).hideHelp();
}

/**
 * CreateStackInstance, then the run's outcome (`-w`, `--wait`). A refused placement is explained with the plan.
 * Shared with `stackl apply -c`.
 */
export async function createInstance(
  ctx: CommandContext,
  name: string,
  sat: string,
  sit: string,
  input: InstanceInput,
  opts: RunOptions,
  verb = "create",
): Promise<number> {
  const spec = specOf(name, sat, sit, input);
  let response: Awaited<ReturnType<typeof ctx.clients.stackInstances.createStackInstance>>;
  try {
    response = await ctx.clients.stackInstances.createStackInstance(
      { spec, ...serverWait(opts) },
      { signal: ctx.signal, timeoutMs: waitTimeout(opts.watch === true ? 0 : (opts.wait ?? 0)) },
    );
  } catch (err) {
    if (!isPolicyRejection(err)) throw err;
    ctx.warn(renderError(err, { server: ctx.server, style: ctx.errStyle }));
    await explainRefusal(ctx, spec, input);
    return EXIT_FAILURE;
  }
  if ((opts.output ?? "table") !== "table" && opts.watch !== true) {
    printMessage(ctx, CreateStackInstanceResponseSchema, response, opts.output);
    return (opts.wait ?? 0) === 0 ? EXIT_OK : runExitCode(ctx, name, response.task);
  }
  return finishRun(
    ctx,
    {
      verb,
      name,
      ...(response.task === undefined ? {} : { task: response.task }),
      ...(response.instance === undefined ? {} : { instance: response.instance }),
    },
    opts,
  );
}

/** True for the server's `policy_rejected` (placement refused by the policies). */
export function isPolicyRejection(err: unknown): boolean {
  return err instanceof ConnectError && err.findDetails(ErrorInfoSchema).some((i) => i.code === "policy_rejected");
}

/** After a refused placement: the plan of the same request, printed to stderr (best effort). */
export async function explainRefusal(
  ctx: CommandContext,
  spec: MessageInitShape<typeof StackInstanceSpecSchema>,
  input: InstanceInput,
): Promise<void> {
  try {
    const { plan } = await ctx.clients.stackInstances.planStackInstance(
      { spec },
      { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
    );
    if (plan === undefined) return;
    const stages =
      input.stages.length > 0 ? input.stages : await templateStages(ctx, spec.stackApplicationTemplate ?? "");
    ctx.warn(`\n${planText(plan, { stages, style: ctx.errStyle })}`);
  } catch (err) {
    if (ctx.signal.aborted) throw err;
  }
}
