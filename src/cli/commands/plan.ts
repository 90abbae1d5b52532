import type { Command } from "commander";
import { DocumentKind, type Stage } from "../../../gen/stackl/v1/documents_pb.js";
import { type Plan, PlanSchema } from "../../../gen/stackl/v1/stack_instances_pb.js";
import { addClientOptions } from "../client.js";
import {
  type CommandContext,
  EXIT_FAILURE,
  EXIT_OK,
  type OutputFormat,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
  UsageError,
} from "../output/command-context.js";
import { planText } from "../output/stack-instances.js";
import {
  addSpecOptions,
  formatManifestProblem,
  type InstanceInput,
  type InstanceOptionValues,
  inputFromOptions,
  mergeInput,
  readManifest,
  specOf,
} from "./instance.js";
import { printMessage } from "./instances.js";

/** The instance name a plan uses when --name is not given (an existing instance of that name is planned as an update). */
export const PLAN_DEFAULT_NAME = "plan-preview";

interface PlanOptions extends InstanceOptionValues {
  sat?: string;
  sit?: string;
  name?: string;
  configFile?: string;
  output?: OutputFormat;
  server?: string;
}

/** `stackl plan --sat SAT --sit SIT …`: placement and steps, explained, without changing anything. */
export function register(program: Command): void {
  const command = program
    .command("plan")
    .description(
      "show where a stack would be placed and the steps it would run, explaining every rejected target (changes nothing)",
    )
    .option("--sat <name>", "stack application template")
    .option("--sit <name>", "stack infrastructure template")
    .option(
      "--name <name>",
      `stack instance name (default ${PLAN_DEFAULT_NAME}); an existing instance is planned as an update`,
    )
    .option("-c, --config-file <manifest>", "read the request from a `stackl apply -c` manifest (options override it)");
  addSpecOptions(command);
  command
    .addOption(outputOption(["table", "yaml", "json"], "table"))
    .addHelpText(
      "after",
      [
        "",
        "Exit status: 0 when the placement is fulfilled, 1 when it is not (or on error), 2 for bad usage.",
        "",
        "Examples:",
        "  stackl plan --sat webshop --sit eu-platform",
        "  stackl plan --sat webshop --sit eu-platform -t environment=production -r web=2 -p app_version=2.5.0",
        "  stackl plan -c shop.yaml --name shop -o json",
      ].join("\n"),
    );
  addClientOptions(command);
  command.action((opts: PlanOptions) => runClientCommand(command, (ctx) => plan(ctx, opts)));
}

async function plan(ctx: CommandContext, opts: PlanOptions): Promise<number> {
  let input: InstanceInput = inputFromOptions(opts);
  let sat = opts.sat;
  let sit = opts.sit;
  let name = opts.name;
  if (opts.configFile !== undefined) {
    const read = readManifest(opts.configFile);
    for (const warning of read.warnings)
      ctx.warn(`${ctx.errStyle.yellow("warning:")} ${opts.configFile}: ${warning}\n`);
    if (read.manifest === undefined) {
      for (const p of read.problems)
        ctx.warn(`${ctx.errStyle.red("error:")} ${formatManifestProblem(opts.configFile, p)}\n`);
      return EXIT_FAILURE;
    }
    input = mergeInput(read.manifest.input, input);
    sat ??= read.manifest.sat;
    sit ??= read.manifest.sit;
    name ??= read.manifest.name;
  }
  const missing = [sat === undefined ? "--sat" : "", sit === undefined ? "--sit" : ""].filter((m) => m !== "");
  if (sat === undefined || sit === undefined) {
    throw new UsageError(`${missing.join(" and ")} ${missing.length === 1 ? "is" : "are"} required`);
  }
  const { plan } = await ctx.clients.stackInstances.planStackInstance(
    { spec: specOf(name ?? PLAN_DEFAULT_NAME, sat, sit, input) },
    { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
  );
  if (plan === undefined) throw new Error("the server returned no plan");
  const output = opts.output ?? "table";
  if (output === "table") {
    const stages = input.stages.length > 0 ? input.stages : await templateStages(ctx, sat);
    ctx.print(planText(plan, { stages, style: ctx.style }));
  } else {
    printMessage(ctx, PlanSchema, plan, output);
  }
  return exitOf(plan);
}

function exitOf(plan: Plan): number {
  return plan.fulfilled ? EXIT_OK : EXIT_FAILURE;
}

/** The stages of the application template, to name the STAGE column (none when it cannot be read). */
export async function templateStages(ctx: CommandContext, sat: string): Promise<Stage[]> {
  try {
    const { document } = await ctx.clients.documents.getDocument(
      { kind: DocumentKind.STACK_APPLICATION_TEMPLATE, name: sat, revision: 0n },
      { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
    );
    return document?.spec.case === "stackApplicationTemplate" ? document.spec.value.stages : [];
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    return [];
  }
}
