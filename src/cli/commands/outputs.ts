import type { JsonObject } from "@bufbuild/protobuf";
import type { Command } from "commander";
import type { StackInstance } from "../../../gen/stackl/v1/stack_instances_pb.js";
import { addClientOptions } from "../client.js";
import {
  type CommandContext,
  EXIT_OK,
  type OutputFormat,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
  UsageError,
} from "../output/command-context.js";
import { toYaml } from "../output/documents.js";
import { outputsObject, outputsTable } from "../output/stack-instances.js";
import { parseParamArgument } from "./instance.js";
import { getInstance } from "./instances.js";

interface OutputsOptions {
  service?: string;
  target?: string;
  params?: JsonObject;
  output?: OutputFormat;
  server?: string;
}

/** `stackl outputs NAME` (show) and `stackl outputs NAME --service S [--target T] -p key=value` (report). */
export function register(program: Command): void {
  const command = program
    .command("outputs")
    .description("show a stack instance's outputs, or report outputs for a service on a target (-p)")
    .argument("<name>", "stack instance name")
    .option("--service <alias>", "service alias (with -p: whose outputs are reported; without: only its outputs)")
    .option(
      "--target <key>",
      "infrastructure target (env.location.zone); with -p it may be left out when the service has one target",
    )
    .option(
      "-p, --params <key=value>",
      "report an output (repeatable): key=value (JSON values typed), key=@file, @file.yaml, or a JSON object",
      parseParamArgument,
    )
    .addOption(outputOption(["table", "yaml", "json"], "table"))
    .addHelpText(
      "after",
      [
        "",
        "Reported outputs are merged into the instance's outputs and into the parameters of the steps that run",
        "after them (the original `stackl update outputs`).",
        "",
        "Examples:",
        "  stackl outputs shop",
        "  stackl outputs shop -o json",
        "  stackl outputs shop --service db --target production.ireland.eu-west-1-a -p db_host=10.0.0.5 -p db_port=5432",
      ].join("\n"),
    );
  addClientOptions(command);
  command.action((name: string, opts: OutputsOptions) =>
    runClientCommand(command, (ctx) => (opts.params === undefined ? show(ctx, name, opts) : report(ctx, name, opts))),
  );
}

async function show(ctx: CommandContext, name: string, opts: OutputsOptions): Promise<number> {
  let instance = await getInstance(ctx, name);
  if (opts.service !== undefined || opts.target !== undefined) instance = only(instance, opts.service, opts.target);
  printOutputs(ctx, instance, opts.output ?? "table", opts.service === undefined && opts.target === undefined);
  return EXIT_OK;
}

/** The instance with only the outputs of `service` (and `target`); instance-wide outputs left out. */
function only(instance: StackInstance, service: string | undefined, target: string | undefined): StackInstance {
  if (service !== undefined && instance.services[service] === undefined) {
    throw new Error(
      `stack instance ${instance.name} has no service ${service} (services: ${Object.keys(instance.services).join(", ") || "none"})`,
    );
  }
  const services: StackInstance["services"] = {};
  for (const [alias, placed] of Object.entries(instance.services)) {
    if (service !== undefined && alias !== service) continue;
    const targets = placed.targets.filter((t) => target === undefined || t.infrastructureTarget === target);
    if (targets.length > 0) services[alias] = { ...placed, targets };
  }
  return { ...instance, services, instanceOutputs: {} };
}

function printOutputs(ctx: CommandContext, instance: StackInstance, output: OutputFormat, withInstance: boolean): void {
  const object = outputsObject(instance);
  if (!withInstance) delete object.instance;
  switch (output) {
    case "json":
      ctx.print(`${JSON.stringify(object, null, 2)}\n`);
      return;
    case "yaml":
      ctx.print(toYaml(object, "native"));
      return;
    case "table": {
      const table = outputsTable(instance, ctx.style);
      if (table === "") ctx.warn(`No outputs reported for stack instance ${instance.name}.\n`);
      else ctx.print(table);
      return;
    }
    default: {
      const never: never = output;
      throw new Error(`unhandled output ${String(never)}`);
    }
  }
}

async function report(ctx: CommandContext, name: string, opts: OutputsOptions): Promise<number> {
  const service = opts.service;
  if (service === undefined) throw new UsageError("reporting outputs (-p) needs --service (and --target)");
  let target = opts.target;
  if (target === undefined) {
    const instance = await getInstance(ctx, name);
    const targets = (instance.services[service]?.targets ?? []).map((t) => t.infrastructureTarget);
    if (targets.length !== 1 || targets[0] === undefined) {
      throw new UsageError(
        targets.length === 0
          ? `stack instance ${name} has no service ${service}`
          : `service ${service} runs on ${targets.length} targets (${targets.join(", ")}); choose one with --target`,
      );
    }
    target = targets[0];
  }
  const { instance } = await ctx.clients.stackInstances.reportOutputs(
    { stackInstance: name, service, infrastructureTarget: target, outputs: opts.params ?? {} },
    { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
  );
  if ((opts.output ?? "table") === "table") {
    ctx.print(`reported ${Object.keys(opts.params ?? {}).length} output(s) for ${service} on ${target}\n`);
  }
  if (instance !== undefined) printOutputs(ctx, only(instance, service, target), opts.output ?? "table", false);
  return EXIT_OK;
}
