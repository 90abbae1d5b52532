import { Argument, type Command } from "commander";
import { DeleteStackInstanceResponseSchema } from "../../../gen/stackl/v1/stack_instances_pb.js";
import { type DocumentKind, describeKinds, protoKindOf } from "../../domain/document-kinds.js";
import { addClientOptions } from "../client.js";
import { parseExpectedRevision, parseKindArgument } from "../output/arguments.js";
import {
  type CommandContext,
  EXIT_OK,
  runClientCommand,
  UNARY_TIMEOUT_MS,
  UsageError,
} from "../output/command-context.js";
import { documentRef } from "../output/documents.js";
import {
  addRunOptions,
  finishRun,
  printMessage,
  type RunOptions,
  runExitCode,
  serverWait,
  waitTimeout,
} from "./instances.js";

interface DeleteOptions extends RunOptions {
  revision?: bigint;
  force?: boolean;
  server?: string;
}

/** `stackl delete instance NAME`: a stack instance (teardown), not a document. */
const INSTANCE_KIND = "instance";
const INSTANCE_ALIASES = new Set([
  "instance",
  "instances",
  "stack_instance",
  "stack-instance",
  "stack_instances",
  "stack-instances",
  "si",
]);

/**
 * `stackl delete KIND NAME`: refused (listing the referrers) while other documents reference it.
 * `stackl delete instance NAME [--force] [-w]`: tears a stack instance down (exact reverse order).
 */
export function register(program: Command): void {
  const command = program
    .command("delete")
    .description(
      "delete a document (refused while other documents reference it), or tear down a stack instance (delete instance NAME)",
    )
    .addArgument(
      new Argument(
        "<kind>",
        `document kind or alias, or "instance" for a stack instance (${describeKinds()})`,
      ).argParser((text): DocumentKind | typeof INSTANCE_KIND =>
        INSTANCE_ALIASES.has(text.toLowerCase()) ? INSTANCE_KIND : parseKindArgument(text),
      ),
    )
    .argument("<name>", "document or stack instance name")
    .option(
      "--revision <n>",
      "delete only if the document is still at revision N (optimistic concurrency)",
      parseExpectedRevision,
    )
    .option(
      "--force",
      "stack instance: attempt every teardown step even when some fail, and remove the instance anyway (reporting the failures)",
    );
  addRunOptions(command, "teardown");
  command.addHelpText(
    "after",
    "\nThe deletion of a document is recorded as a revision: `stackl history` still shows the document, and\n" +
      "`stackl restore KIND NAME --revision N` brings it back.\n" +
      "\nA stack instance is torn down in exact reverse order (stages, services, functional requirements);\n" +
      "-w, --wait and -o apply to it only.\n" +
      "\nExamples:\n" +
      "  stackl delete zone lab-rack-1\n" +
      "  stackl delete instance shop -w\n" +
      "  stackl delete instance shop --force --wait 10m",
  );
  addClientOptions(command);
  command.action((kind: DocumentKind | typeof INSTANCE_KIND, name: string, opts: DeleteOptions) =>
    runClientCommand(command, (ctx) => {
      if (kind === INSTANCE_KIND) {
        if (opts.revision !== undefined) throw new UsageError("--revision applies to documents");
        return removeInstance(ctx, name, opts);
      }
      const instanceOnly = [
        opts.force === undefined ? "" : "--force",
        opts.watch === undefined ? "" : "--watch",
        opts.wait === undefined ? "" : "--wait",
        opts.output === undefined ? "" : "--output",
      ].filter((o) => o !== "");
      if (instanceOnly.length > 0)
        throw new UsageError(
          `${instanceOnly.join(", ")} ${instanceOnly.length === 1 ? "applies" : "apply"} only to stack instances`,
        );
      return remove(ctx, kind, name, opts);
    }),
  );
}

async function removeInstance(ctx: CommandContext, name: string, opts: DeleteOptions): Promise<number> {
  const waitMs = opts.watch === true ? 0 : (opts.wait ?? 0);
  const response = await ctx.clients.stackInstances.deleteStackInstance(
    { name, force: opts.force === true, ...serverWait(opts) },
    { signal: ctx.signal, timeoutMs: waitTimeout(waitMs) },
  );
  if ((opts.output ?? "table") !== "table" && opts.watch !== true) {
    printMessage(ctx, DeleteStackInstanceResponseSchema, response, opts.output);
    return waitMs === 0 ? EXIT_OK : runExitCode(ctx, name, response.task);
  }
  return finishRun(
    ctx,
    {
      verb: opts.force === true ? "forced delete" : "delete",
      name,
      ...(response.task === undefined ? {} : { task: response.task }),
    },
    opts,
  );
}

async function remove(ctx: CommandContext, kind: DocumentKind, name: string, opts: DeleteOptions): Promise<number> {
  const { revision } = await ctx.clients.documents.deleteDocument(
    { kind: protoKindOf(kind), name, ...(opts.revision === undefined ? {} : { expectedRevision: opts.revision }) },
    { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
  );
  ctx.print(`${ctx.style.red("deleted")}  ${documentRef(kind, name)}  (revision ${revision} records the deletion)\n`);
  return EXIT_OK;
}
