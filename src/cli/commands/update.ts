import { Code } from "@connectrpc/connect";
import type { Command } from "commander";
import {
  type StackInstance,
  StackInstanceState,
  UpdateStackInstanceResponseSchema,
} from "../../../gen/stackl/v1/stack_instances_pb.js";
import { addClientOptions } from "../client.js";
import { type CommandContext, EXIT_FAILURE, EXIT_OK, runClientCommand } from "../output/command-context.js";
import { renderError, rpcFailureOf } from "../output/errors.js";
import { instanceView } from "../output/stack-instances.js";
import { explainRefusal, isPolicyRejection } from "./create.js";
import {
  addSpecOptions,
  type InstanceInput,
  type InstanceOptionValues,
  inputFromOptions,
  mergeInput,
  type ServiceRefInput,
  specOf,
} from "./instance.js";
import {
  addRunOptions,
  finishRun,
  getInstance,
  printMessage,
  type RunOptions,
  runExitCode,
  serverWait,
  waitTimeout,
} from "./instances.js";

interface UpdateInstanceOptions extends InstanceOptionValues, RunOptions {
  removeService?: string[];
  disableInvocation?: boolean;
  server?: string;
}

/** `stackl update instance NAME …`. */
export function register(program: Command): void {
  const update = program.command("update").description("change a stack instance (`stackl update instance NAME`)");
  const command = update
    .command("instance")
    .description(
      "merge parameters, change replicas, add or remove extra services, and run the update (only what changed is torn down)",
    )
    .argument("<name>", "stack instance name");
  addSpecOptions(command);
  command
    .option(
      "--remove-service <alias>",
      "tear down an extra service added earlier with --service (repeatable)",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option("-d, --disable-invocation", "record the change without running any job");
  addRunOptions(command, "update");
  command.addHelpText(
    "after",
    [
      "",
      "Parameters, secrets, tags and replicas are merged into the instance's; extra services are kept unless removed",
      "with --remove-service; --stage replaces the stages. The update is refused if the instance changed meanwhile.",
      "",
      "Examples:",
      "  stackl update instance shop -p app_version=2.6.0 -w",
      "  stackl update instance shop -r web=3 --wait 10m",
      "  stackl update instance shop --service cache=redis --remove-service search",
      "  stackl update instance shop -p maintenance=true --disable-invocation",
    ].join("\n"),
  );
  addClientOptions(command);
  command.action((name: string, opts: UpdateInstanceOptions) =>
    runClientCommand(command, async (ctx) => {
      const current = await getInstance(ctx, name);
      if (current.state === StackInstanceState.DELETED) {
        throw new Error(`stack instance ${name} is deleted; create it again with \`stackl create instance ${name}\``);
      }
      const change = inputFromOptions(opts);
      const services = desiredServices(current, change.services, opts.removeService ?? []);
      return updateInstance(
        ctx,
        current,
        { ...change, services },
        { ...opts, disableInvocation: opts.disableInvocation === true },
      );
    }),
  );
}

/**
 * The extra services after `stackl update instance`: the instance's, with `added` added or replaced by alias and
 * `removed` left out. Removing an alias that is not an extra service is an error.
 */
export function desiredServices(
  current: Pick<StackInstance, "extraServices" | "serviceOrder" | "name">,
  added: readonly ServiceRefInput[],
  removed: readonly string[],
): ServiceRefInput[] {
  const extras = current.extraServices.map((s) => ({ name: s.name, service: s.service }));
  for (const alias of removed) {
    if (!extras.some((s) => s.name === alias)) {
      if (added.some((s) => s.name === alias)) continue;
      const inTemplate = current.serviceOrder.includes(alias);
      throw new Error(
        inTemplate
          ? `${alias} is a service of the application template, not an extra service; only extra services can be removed`
          : `stack instance ${current.name} has no extra service ${alias} (extra services: ${extras.map((s) => s.name).join(", ") || "none"})`,
      );
    }
  }
  const out = extras.filter((s) => !removed.includes(s.name));
  for (const ref of added) {
    const i = out.findIndex((s) => s.name === ref.name);
    if (i >= 0) out[i] = ref;
    else out.push(ref);
  }
  return out;
}

export interface UpdateRunOptions extends RunOptions {
  disableInvocation: boolean;
}

/**
 * UpdateStackInstance of `current` (refused if it changed since it was read), then the run's outcome. `change.services`
 * is the full list of extra services wanted. Shared with `stackl apply -c`.
 */
export async function updateInstance(
  ctx: CommandContext,
  current: StackInstance,
  change: InstanceInput,
  opts: UpdateRunOptions,
  verb = "update",
): Promise<number> {
  const name = current.name;
  let response: Awaited<ReturnType<typeof ctx.clients.stackInstances.updateStackInstance>>;
  const waitMs = opts.disableInvocation || opts.watch === true ? 0 : (opts.wait ?? 0);
  try {
    response = await ctx.clients.stackInstances.updateStackInstance(
      {
        name,
        params: change.params,
        secrets: change.secrets,
        serviceParams: change.serviceParams,
        serviceSecrets: Object.fromEntries(Object.entries(change.serviceSecrets).map(([a, s]) => [a, { secrets: s }])),
        tags: change.tags,
        replicas: change.replicas,
        services: change.services,
        stages: change.stages,
        disableInvocation: opts.disableInvocation,
        expectedGeneration: current.generation,
        ...(opts.disableInvocation ? {} : serverWait(opts)),
      },
      { signal: ctx.signal, timeoutMs: waitTimeout(waitMs) },
    );
  } catch (err) {
    if (rpcFailureOf(err)?.code === Code.Aborted) {
      throw new Error(
        `stack instance ${name} changed while this update was prepared (it was at generation ${current.generation}); run the command again`,
      );
    }
    if (!isPolicyRejection(err)) throw err;
    ctx.warn(renderError(err, { server: ctx.server, style: ctx.errStyle }));
    const wanted = { ...mergeInput(storedInput(current), change), services: change.services };
    const spec = specOf(name, current.stackApplicationTemplate, current.stackInfrastructureTemplate, wanted);
    await explainRefusal(ctx, spec, wanted);
    return EXIT_FAILURE;
  }
  const output = opts.output ?? "table";
  if (opts.disableInvocation) {
    if (output !== "table") printMessage(ctx, UpdateStackInstanceResponseSchema, response, output);
    else {
      ctx.print(`updated stack instance ${ctx.style.bold(name)} without running any job (--disable-invocation)\n`);
      if (response.instance !== undefined) ctx.print(instanceView(response.instance, ctx.now(), ctx.style));
    }
    return EXIT_OK;
  }
  if (output !== "table" && opts.watch !== true) {
    printMessage(ctx, UpdateStackInstanceResponseSchema, response, output);
    return waitMs === 0 ? EXIT_OK : runExitCode(ctx, name, response.task);
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

/** What the instance was last asked for, as far as the API shows it (secrets only by name: not needed to plan). */
export function storedInput(instance: StackInstance): InstanceInput {
  return {
    params: instance.params ?? {},
    secrets: {},
    serviceParams: instance.serviceParams,
    serviceSecrets: {},
    tags: instance.tags,
    replicas: instance.replicas,
    services: instance.extraServices.map((s) => ({ name: s.name, service: s.service })),
    stages: instance.stages.map((s) => ({ name: s.name, services: [...s.services] })),
  };
}
