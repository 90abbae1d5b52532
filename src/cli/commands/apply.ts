import { toJson } from "@bufbuild/protobuf";
import type { Command } from "commander";
import {
  ApplyAction,
  type ApplyDocumentsResponse,
  ApplyDocumentsResponseSchema,
  type ApplyResult,
} from "../../../gen/stackl/v1/documents_pb.js";
import { kindFromProto } from "../../domain/document-kinds.js";
import { addClientOptions } from "../client.js";
import { formatMappedViolation, formatProblem, type LoadedDocument, loadDocuments, mapViolation } from "../files.js";
import {
  type CommandContext,
  EXIT_FAILURE,
  EXIT_OK,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
  UsageError,
} from "../output/command-context.js";
import { renderError } from "../output/errors.js";
import type { Style } from "../output/style.js";
import { renderTable } from "../output/table.js";

/** Largest batch the server writes atomically (ApplyDocumentsRequest.documents max_items). */
export const MAX_APPLY_DOCUMENTS = 1000;

interface ApplyOptions {
  file: string[];
  dryRun?: boolean;
  output?: "text" | "json";
  server?: string;
}

/** `stackl apply -f FILE|DIR …`: every document in one atomic ApplyDocuments batch. */
export function register(program: Command): void {
  const command = program
    .command("apply")
    .description("create or update documents from YAML/JSON files and directories, in one atomic batch")
    .requiredOption(
      "-f, --file <path>",
      "a file, a directory (recursive: .yaml, .yml, .json) or - for stdin; repeatable",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option("--dry-run", "validate on the server and report what would change, writing nothing")
    .addOption(outputOption(["text", "json"], "text"))
    .addHelpText(
      "after",
      [
        "",
        "Files are YAML (several documents separated by ---) or JSON, in the original STACKL format",
        "(name/type/category at the top) or the native format (meta: plus one spec field). All documents are",
        `written together or not at all (at most ${MAX_APPLY_DOCUMENTS}); unchanged documents get no new revision.`,
        "",
        "Examples:",
        "  stackl apply -f ./documents/",
        "  stackl apply -f zones.yaml -f services/ --dry-run",
      ].join("\n"),
    );
  addClientOptions(command);
  command.action((opts: ApplyOptions) => runClientCommand(command, (ctx) => apply(ctx, opts)));
}

async function apply(ctx: CommandContext, opts: ApplyOptions): Promise<number> {
  const loaded = await loadDocuments(opts.file);
  for (const warning of loaded.warnings) ctx.warn(`${ctx.errStyle.yellow("warning:")} ${warning}\n`);
  if (loaded.problems.length > 0) {
    ctx.warn(
      `${ctx.errStyle.red("error:")} ${plural(loaded.problems.length, "problem")} in the files; nothing was sent:\n`,
    );
    for (const problem of loaded.problems) ctx.warn(`  ${formatProblem(problem)}\n`);
    return EXIT_FAILURE;
  }
  const documents = loaded.documents;
  if (documents.length === 0) throw new UsageError(`no documents in ${opts.file.join(", ")}`);
  if (documents.length > MAX_APPLY_DOCUMENTS) {
    // Chunking would give up atomicity (a failure half-way leaves half the documents written), so refuse.
    ctx.warn(
      `${ctx.errStyle.red("error:")} ${documents.length} documents are more than one atomic batch holds ` +
        `(${MAX_APPLY_DOCUMENTS}); nothing was sent.\n` +
        "  Apply them in several runs (each run is atomic on its own), e.g. one directory at a time.\n",
    );
    return EXIT_FAILURE;
  }

  // Hook for policy templates: when src/policy offers a local compiler, templates without a prebuilt bundle are
  // compiled here with a local `opa build -t wasm` (setting `policy_template.bundle`), so that the server needs no
  // opa binary and Rego errors point at the file. Until then the server compiles (or stores) `policy` on apply.

  let response: ApplyDocumentsResponse;
  try {
    response = await ctx.clients.documents.applyDocuments(
      { documents: documents.map((d) => ({ document: d.doc })), dryRun: opts.dryRun === true },
      { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
    );
  } catch (err) {
    ctx.warn(
      renderError(err, {
        server: ctx.server,
        style: ctx.errStyle,
        violationsHeader: "the server rejected the batch; nothing was written:",
        violationLine: (v) => formatMappedViolation(mapViolation(v, documents)),
      }),
    );
    return EXIT_FAILURE;
  }
  if (opts.output === "json") {
    ctx.print(`${JSON.stringify(toJson(ApplyDocumentsResponseSchema, response), null, 2)}\n`);
    return EXIT_OK;
  }
  ctx.print(renderApplyResults(response.results, documents, { dryRun: opts.dryRun === true, style: ctx.style }));
  return EXIT_OK;
}

const ACTION_WORDS: Record<ApplyAction, string> = {
  [ApplyAction.UNSPECIFIED]: "applied",
  [ApplyAction.CREATED]: "created",
  [ApplyAction.UPDATED]: "updated",
  [ApplyAction.UNCHANGED]: "unchanged",
};

const DRY_RUN_WORDS: Record<ApplyAction, string> = {
  [ApplyAction.UNSPECIFIED]: "would apply",
  [ApplyAction.CREATED]: "would create",
  [ApplyAction.UPDATED]: "would update",
  [ApplyAction.UNCHANGED]: "unchanged",
};

export interface RenderApplyOptions {
  dryRun: boolean;
  style: Style;
}

/** One line per document (`created  zone/eu-west-1a  (revision 1)`) and a summary line. */
export function renderApplyResults(
  results: readonly ApplyResult[],
  documents: readonly Pick<LoadedDocument, "source">[],
  options: RenderApplyOptions,
): string {
  const { style } = options;
  const table = renderTable(
    results.map((r, i) => ({ r, source: documents[i]?.source ?? "" })),
    [
      {
        header: "ACTION",
        value: ({ r }) => (options.dryRun ? DRY_RUN_WORDS : ACTION_WORDS)[r.action] ?? "applied",
        color: (text, { r }) => actionColor(r.action, style)(text),
      },
      { header: "DOCUMENT", value: ({ r }) => `${kindFromProto(r.kind) ?? "?"}/${r.name}` },
      { header: "REVISION", value: ({ r }) => (r.revision > 0n ? `(revision ${r.revision})` : "") },
      { header: "SOURCE", value: ({ source }) => source, color: (text) => style.dim(text) },
    ],
    style,
  );
  const lines = table.split("\n").slice(1).join("\n"); // no header: one line per document
  const count = (action: ApplyAction): number => results.filter((r) => r.action === action).length;
  const parts = [
    `${count(ApplyAction.CREATED)} created`,
    `${count(ApplyAction.UPDATED)} updated`,
    `${count(ApplyAction.UNCHANGED)} unchanged`,
  ];
  const summary = options.dryRun
    ? `dry run: ${plural(results.length, "document")} checked (${parts.join(", ")}); nothing was written`
    : `${plural(results.length, "document")} applied: ${parts.join(", ")}`;
  return `${lines}${style.bold(summary)}\n`;
}

function actionColor(action: ApplyAction, style: Style): (text: string) => string {
  switch (action) {
    case ApplyAction.CREATED:
      return style.green;
    case ApplyAction.UPDATED:
      return style.yellow;
    case ApplyAction.UNCHANGED:
      return style.dim;
    case ApplyAction.UNSPECIFIED:
      return (text) => text;
    default: {
      const never: never = action;
      return () => String(never);
    }
  }
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
