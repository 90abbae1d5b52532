import { Argument, type Command } from "commander";
import { type DocumentKind, describeKinds, protoKindOf } from "../../domain/document-kinds.js";
import { addClientOptions } from "../client.js";
import { parseExpectedRevision, parseKindArgument } from "../output/arguments.js";
import { type CommandContext, EXIT_OK, runClientCommand, UNARY_TIMEOUT_MS } from "../output/command-context.js";
import { documentRef } from "../output/documents.js";

interface DeleteOptions {
  revision?: bigint;
  server?: string;
}

/** `stackl delete KIND NAME`: refused (listing the referrers) while other documents reference it. */
export function register(program: Command): void {
  const command = program
    .command("delete")
    .description("delete a document (refused while other documents reference it)")
    .addArgument(new Argument("<kind>", `document kind or alias (${describeKinds()})`).argParser(parseKindArgument))
    .argument("<name>", "document name")
    .option(
      "--revision <n>",
      "delete only if the document is still at revision N (optimistic concurrency)",
      parseExpectedRevision,
    )
    .addHelpText(
      "after",
      "\nThe deletion is recorded as a revision: `stackl history` still shows the document, and\n" +
        "`stackl restore KIND NAME --revision N` brings it back.",
    );
  addClientOptions(command);
  command.action((kind: DocumentKind, name: string, opts: DeleteOptions) =>
    runClientCommand(command, (ctx) => remove(ctx, kind, name, opts)),
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
