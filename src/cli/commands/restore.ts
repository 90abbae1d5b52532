import { Argument, type Command } from "commander";
import { type DocumentKind, describeKinds, protoKindOf } from "../../domain/document-kinds.js";
import { addClientOptions } from "../client.js";
import { parseExpectedRevision, parseKindArgument, parseRevision } from "../output/arguments.js";
import {
  type CommandContext,
  EXIT_OK,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
} from "../output/command-context.js";
import { documentJson, documentRef, documentsYaml } from "../output/documents.js";

interface RestoreOptions {
  revision: bigint;
  expectedRevision?: bigint;
  output?: "text" | "yaml" | "json";
  server?: string;
}

/** `stackl restore KIND NAME --revision N`: writes an old revision as a new one. */
export function register(program: Command): void {
  const command = program
    .command("restore")
    .description("write an old revision of a document as its newest revision (also undoes a deletion)")
    .addArgument(new Argument("<kind>", `document kind or alias (${describeKinds()})`).argParser(parseKindArgument))
    .argument("<name>", "document name")
    .requiredOption("--revision <n>", "the revision to restore (see `stackl history KIND NAME`)", parseRevision)
    .option(
      "--expected-revision <n>",
      "restore only if the document is at revision N now (0 = deleted)",
      parseExpectedRevision,
    )
    .addOption(outputOption(["text", "yaml", "json"], "text"));
  addClientOptions(command);
  command.action((kind: DocumentKind, name: string, opts: RestoreOptions) =>
    runClientCommand(command, (ctx) => restore(ctx, kind, name, opts)),
  );
}

async function restore(ctx: CommandContext, kind: DocumentKind, name: string, opts: RestoreOptions): Promise<number> {
  const { document } = await ctx.clients.documents.restoreRevision(
    {
      kind: protoKindOf(kind),
      name,
      revision: opts.revision,
      ...(opts.expectedRevision === undefined ? {} : { expectedRevision: opts.expectedRevision }),
    },
    { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
  );
  if (document === undefined) throw new Error(`the server returned no document for ${kind}/${name}`);
  switch (opts.output ?? "text") {
    case "yaml":
      ctx.print(documentsYaml([document], "native"));
      break;
    case "json":
      ctx.print(`${JSON.stringify(documentJson(document), null, 2)}\n`);
      break;
    case "text":
      ctx.print(
        `${ctx.style.cyan("restored")}  ${documentRef(kind, name)}  revision ${opts.revision} ` +
          `as revision ${document.meta?.revision ?? 0n}\n`,
      );
      break;
  }
  return EXIT_OK;
}
