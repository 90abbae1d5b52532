import { create, toJson } from "@bufbuild/protobuf";
import { Argument, type Command } from "commander";
import { type DocumentRevision, ListRevisionsResponseSchema } from "../../../gen/stackl/v1/documents_pb.js";
import { type DocumentKind, describeKinds, protoKindOf } from "../../domain/document-kinds.js";
import { addClientOptions } from "../client.js";
import { parseKindArgument, parsePositiveInt } from "../output/arguments.js";
import {
  type CommandContext,
  EXIT_OK,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
} from "../output/command-context.js";
import { revisionsLog, revisionsTable } from "../output/history.js";

/** Revisions per ListRevisions page. */
const PAGE_SIZE = 500;

interface HistoryOptions {
  output?: "table" | "json";
  diff?: boolean;
  limit?: number;
  server?: string;
}

/** `stackl history KIND NAME`: every revision of a document, newest first, with its changes. */
export function register(program: Command): void {
  const command = program
    .command("history")
    .description("list the revisions of a document, newest first (who, when, what changed)")
    .addArgument(new Argument("<kind>", `document kind or alias (${describeKinds()})`).argParser(parseKindArgument))
    .argument("<name>", "document name")
    .addOption(outputOption(["table", "json"], "table"))
    .option("--diff", "show the field changes of every revision (~ changed, + added, - removed)")
    .option("--limit <n>", "only the newest N revisions", parsePositiveInt)
    .addHelpText(
      "after",
      "\nA document's revisions survive its deletion. Restore one with `stackl restore KIND NAME --revision N`.",
    );
  addClientOptions(command);
  command.action((kind: DocumentKind, name: string, opts: HistoryOptions) =>
    runClientCommand(command, (ctx) => history(ctx, kind, name, opts)),
  );
}

async function history(ctx: CommandContext, kind: DocumentKind, name: string, opts: HistoryOptions): Promise<number> {
  const limit = opts.limit ?? Number.POSITIVE_INFINITY;
  const revisions: DocumentRevision[] = [];
  let pageToken = "";
  do {
    const page = await ctx.clients.documents.listRevisions(
      { kind: protoKindOf(kind), name, pageSize: Math.min(PAGE_SIZE, limit - revisions.length), pageToken },
      { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
    );
    revisions.push(...page.revisions);
    pageToken = page.nextPageToken;
  } while (pageToken !== "" && revisions.length < limit);
  const shown = revisions.slice(0, limit);
  if (opts.output === "json") {
    const json = toJson(ListRevisionsResponseSchema, create(ListRevisionsResponseSchema, { revisions: shown }));
    ctx.print(`${JSON.stringify(json, null, 2)}\n`);
    return EXIT_OK;
  }
  ctx.print(opts.diff === true ? revisionsLog(shown, ctx.style) : revisionsTable(shown, ctx.style));
  return EXIT_OK;
}
