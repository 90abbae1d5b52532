import { create } from "@bufbuild/protobuf";
import { Argument, type Command, InvalidArgumentError, Option } from "commander";
import { type Document, DocumentKind as ProtoDocumentKind } from "../../../gen/stackl/v1/documents_pb.js";
import { ListStackInstancesResponseSchema, type StackInstance } from "../../../gen/stackl/v1/stack_instances_pb.js";
import { type DocumentKind, describeKinds, findKind, kindInfo, protoKindOf } from "../../domain/document-kinds.js";
import { toStacklObject } from "../../domain/stackl-format.js";
import { addClientOptions } from "../client.js";
import { parseKindArgument, parseLabelSelector, parseRevision } from "../output/arguments.js";
import {
  type CommandContext,
  EXIT_OK,
  type OutputFormat,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
  UsageError,
} from "../output/command-context.js";
import {
  DOCUMENT_SHAPES,
  type DocumentShape,
  documentJson,
  documentListJson,
  documentsTable,
  documentsYaml,
  targetsTable,
} from "../output/documents.js";
import { instancesTable } from "../output/stack-instances.js";
import { followInstance, getInstance, printInstance, printMessage } from "./instances.js";

/** Documents per ListDocuments page while listing everything. */
const LIST_PAGE_SIZE = 500;

/** `stackl get all` lists every kind. */
const ALL_KINDS = "all";

/** `stackl get instance[s] [NAME]`: stack instances (not documents). */
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

type GetKind = DocumentKind | typeof ALL_KINDS | typeof INSTANCE_KIND;

interface GetOptions {
  watch?: boolean;
  output?: OutputFormat;
  revision?: bigint;
  selector?: Record<string, string>;
  prefix?: string;
  format?: DocumentShape;
  server?: string;
}

/** `stackl get KIND [NAME]`: a table of documents, or one document as YAML/JSON. */
export function register(program: Command): void {
  const command = program
    .command("get")
    .description("list documents of a kind, or show one document")
    .addArgument(
      new Argument(
        "<kind>",
        `document kind or alias, "${ALL_KINDS}", or "instance" for stack instances (${describeKinds()})`,
      ).argParser((text): GetKind => {
        const lower = text.toLowerCase();
        if (lower === ALL_KINDS) return ALL_KINDS;
        if (INSTANCE_ALIASES.has(lower)) return INSTANCE_KIND;
        return parseKind(text);
      }),
    )
    .argument("[name]", "document or stack instance name (omit to list)")
    .addOption(outputOption(["table", "yaml", "json"], "table for a list and a stack instance, yaml for one document"))
    .option(
      "-w, --watch",
      "stack instance: a live view of its steps until it is ready, failed or deleted (exit 0 on ready/deleted, 1 on failed)",
    )
    .option("--revision <n>", "show a past revision of the document", parseRevision)
    .option(
      "-l, --selector <key=value>",
      "only documents with these labels (repeatable, comma-separated)",
      parseLabelSelector,
    )
    .option("--prefix <text>", "only documents whose name starts with this")
    .addOption(
      new Option(
        "--format <shape>",
        "YAML/JSON shape: native (API, with revision and computed fields) or stackl (original type:/category: files, re-appliable)",
      )
        .choices([...DOCUMENT_SHAPES])
        .default("native"),
    )
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  stackl get sit                      # table; TARGETS counts the computed targets",
        "  stackl get sit eu-platform          # YAML with the computed targets",
        "  stackl get service web -o yaml --format stackl > web.yml   # re-appliable STACKL file",
        "  stackl get zone -l tier=gold -o json",
        "  stackl get instances                # stack instances: STATE, STEPS ready/total, REASON",
        "  stackl get instance shop            # its steps: STAGE, SERVICE, FR, TARGETS, STATUS, JOB, ERROR",
        "  stackl get instance shop -w         # live view until ready, failed or deleted",
      ].join("\n"),
    );
  addClientOptions(command);
  command.action((kind: GetKind, name: string | undefined, opts: GetOptions) =>
    runClientCommand(command, (ctx) => {
      if (kind === INSTANCE_KIND) {
        const documentOnly = [
          opts.revision === undefined ? "" : "--revision",
          opts.selector === undefined ? "" : "--selector",
          opts.prefix === undefined ? "" : "--prefix",
          command.getOptionValueSource("format") === "cli" ? "--format" : "",
        ].filter((o) => o !== "");
        if (documentOnly.length > 0)
          throw new UsageError(
            `${documentOnly.join(", ")} ${documentOnly.length === 1 ? "applies" : "apply"} only to documents`,
          );
        if (name === undefined) {
          if (opts.watch === true)
            throw new UsageError("--watch follows one stack instance: stackl get instance NAME -w");
          return listInstances(ctx, opts.output ?? "table");
        }
        return opts.watch === true
          ? followInstance(ctx, name, { output: opts.output ?? "table" })
          : showInstance(ctx, name, opts.output ?? "table");
      }
      if (opts.watch === true) throw new UsageError("--watch applies to stack instances (stackl get instance NAME -w)");
      return name === undefined ? list(ctx, kind, opts) : getOne(ctx, kind, name, opts);
    }),
  );
}

/** Instances per ListStackInstances page. */
const INSTANCE_PAGE_SIZE = 200;

async function listInstances(ctx: CommandContext, output: OutputFormat): Promise<number> {
  const instances: StackInstance[] = [];
  let pageToken = "";
  do {
    const page = await ctx.clients.stackInstances.listStackInstances(
      { pageSize: INSTANCE_PAGE_SIZE, pageToken },
      { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
    );
    instances.push(...page.instances);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  switch (output) {
    case "table":
      if (instances.length === 0) ctx.warn("No stack instances found.\n");
      else ctx.print(instancesTable(instances, ctx.now(), ctx.style));
      return EXIT_OK;
    case "yaml":
    case "json":
      printMessage(
        ctx,
        ListStackInstancesResponseSchema,
        create(ListStackInstancesResponseSchema, { instances }),
        output,
      );
      return EXIT_OK;
    default: {
      const never: never = output;
      throw new Error(`unhandled output ${String(never)}`);
    }
  }
}

async function showInstance(ctx: CommandContext, name: string, output: OutputFormat): Promise<number> {
  printInstance(ctx, await getInstance(ctx, name), output);
  return EXIT_OK;
}

function parseKind(text: string): DocumentKind {
  if (findKind(text) === undefined) {
    throw new InvalidArgumentError(
      `unknown document kind ${JSON.stringify(text)}; valid kinds: ${describeKinds()}; or ${ALL_KINDS}`,
    );
  }
  return parseKindArgument(text);
}

async function list(ctx: CommandContext, kind: DocumentKind | typeof ALL_KINDS, opts: GetOptions): Promise<number> {
  if (opts.revision !== undefined) throw new UsageError("--revision needs a document name");
  const docs = await listAll(ctx, {
    kind: kind === ALL_KINDS ? ProtoDocumentKind.UNSPECIFIED : protoKindOf(kind),
    namePrefix: opts.prefix ?? "",
    labelSelector: opts.selector ?? {},
  });
  const output = opts.output ?? "table";
  switch (output) {
    case "table":
      if (docs.length === 0) {
        ctx.warn(`No ${kind === ALL_KINDS ? "documents" : kindInfo(kind).plural} found.\n`);
        return EXIT_OK;
      }
      ctx.print(
        documentsTable(docs, {
          ...(kind === ALL_KINDS ? {} : { kind }),
          now: ctx.now(),
          style: ctx.style,
        }),
      );
      return EXIT_OK;
    case "yaml":
      ctx.print(documentsYaml(docs, opts.format ?? "native"));
      return EXIT_OK;
    case "json":
      ctx.print(`${JSON.stringify(jsonOf(docs, opts.format ?? "native"), null, 2)}\n`);
      return EXIT_OK;
    default: {
      const never: never = output;
      throw new Error(`unhandled output ${String(never)}`);
    }
  }
}

/** Every document matching `filter`, through all pages. */
export async function listAll(
  ctx: Pick<CommandContext, "clients" | "signal">,
  filter: { kind: ProtoDocumentKind; namePrefix: string; labelSelector: Record<string, string> },
): Promise<Document[]> {
  const docs: Document[] = [];
  let pageToken = "";
  do {
    const page = await ctx.clients.documents.listDocuments(
      { ...filter, pageSize: LIST_PAGE_SIZE, pageToken },
      { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
    );
    docs.push(...page.documents);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return docs;
}

async function getOne(
  ctx: CommandContext,
  kind: DocumentKind | typeof ALL_KINDS,
  name: string,
  opts: GetOptions,
): Promise<number> {
  if (kind === ALL_KINDS) throw new UsageError(`"${ALL_KINDS}" lists documents; name a kind to show one document`);
  if (opts.selector !== undefined || opts.prefix !== undefined) {
    throw new UsageError("--selector and --prefix filter lists; leave out the name to list");
  }
  const { document } = await ctx.clients.documents.getDocument(
    { kind: protoKindOf(kind), name, revision: opts.revision ?? 0n },
    { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
  );
  if (document === undefined) throw new Error(`the server returned no document for ${kind}/${name}`);
  const output = opts.output ?? "yaml";
  switch (output) {
    case "table": {
      ctx.print(documentsTable([document], { kind, now: ctx.now(), style: ctx.style }));
      if (document.spec.case === "stackInfrastructureTemplate" && document.spec.value.targets.length > 0) {
        ctx.print(`\n${targetsTable(document.spec.value.targets, ctx.style)}`);
      }
      return EXIT_OK;
    }
    case "yaml":
      ctx.print(documentsYaml([document], opts.format ?? "native"));
      return EXIT_OK;
    case "json":
      ctx.print(`${JSON.stringify(jsonOf([document], opts.format ?? "native", true), null, 2)}\n`);
      return EXIT_OK;
    default: {
      const never: never = output;
      throw new Error(`unhandled output ${String(never)}`);
    }
  }
}

/** `-o json`: proto JSON (native) or the STACKL objects; one document alone, a list as `{documents: [...]}`. */
function jsonOf(docs: readonly Document[], shape: DocumentShape, single = false): unknown {
  if (shape === "stackl") {
    const objects = docs.map((d) => toStacklObject(d));
    return single ? objects[0] : objects;
  }
  return single && docs[0] !== undefined ? documentJson(docs[0]) : documentListJson(docs);
}
