import { toJson } from "@bufbuild/protobuf";
import { type Command, Option } from "commander";
import {
  ApplyAction,
  type ApplyDocumentsResponse,
  ApplyDocumentsResponseSchema,
  type ApplyResult,
} from "../../../gen/stackl/v1/documents_pb.js";
import { PlanSchema, StackInstanceState } from "../../../gen/stackl/v1/stack_instances_pb.js";
import { kindFromProto } from "../../domain/document-kinds.js";
import { findOpa } from "../../policy/opa-cli.js";
import { compileRegoPolicy } from "../../policy/rego-compiler.js";
import { addClientOptions } from "../client.js";
import { formatMappedViolation, formatProblem, type LoadedDocument, loadDocuments, mapViolation } from "../files.js";
import { parseDurationArgument } from "../output/arguments.js";
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
import { planText } from "../output/stack-instances.js";
import type { Style } from "../output/style.js";
import { renderTable } from "../output/table.js";
import { createInstance } from "./create.js";
import {
  addSpecOptions,
  formatManifestProblem,
  type InstanceOptionValues,
  inputFromOptions,
  mergeInput,
  readManifest,
  specOf,
} from "./instance.js";
import { findInstance, printMessage, type RunOptions } from "./instances.js";
import { templateStages } from "./plan.js";
import { storedInput, updateInstance } from "./update.js";

/** Largest batch the server writes atomically (ApplyDocumentsRequest.documents max_items). */
export const MAX_APPLY_DOCUMENTS = 1000;

interface ApplyOptions extends InstanceOptionValues {
  file?: string[];
  configFile?: string;
  dryRun?: boolean;
  watch?: boolean;
  showProgress?: boolean;
  wait?: number;
  output?: "text" | "table" | "yaml" | "json";
  server?: string;
}

/**
 * `stackl apply -f FILE|DIR …`: every document in one atomic ApplyDocuments batch. `stackl apply -c MANIFEST NAME`:
 * the stack instance NAME from an original STACKL manifest, created if it does not exist, else updated.
 */
export function register(program: Command): void {
  const command = program
    .command("apply")
    .description(
      "create or update documents from YAML/JSON files and directories, in one atomic batch (-f); or a stack instance from a manifest (-c MANIFEST NAME)",
    )
    .argument("[name]", "with -c: the stack instance name (default: the manifest's name)")
    .option(
      "-f, --file <path>",
      "a file, a directory (recursive: .yaml, .yml, .json) or - for stdin; repeatable",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option(
      "-c, --config-file <manifest>",
      "a stack instance manifest (the original `stackl apply -c` format; - for stdin): create or update NAME",
    )
    .option("--dry-run", "validate on the server and report what would change, writing nothing (-c: show the plan)");
  addSpecOptions(command);
  command
    .option("-w, --watch", "with -c: show a live view of the steps until the run finishes; exit 0 only if it succeeded")
    .addOption(new Option("-s, --show-progress", "the original spelling of -w").hideHelp())
    .option(
      "--wait <duration>",
      "with -c: wait up to this long (e.g. 10m) for the run to finish; exit 1 unless it succeeded",
      parseDurationArgument,
    )
    .addOption(outputOption(["text", "table", "yaml", "json"], "text; yaml only with -c"))
    .addHelpText(
      "after",
      [
        "",
        "Files are YAML (several documents separated by ---) or JSON, in the original STACKL format",
        "(name/type/category at the top) or the native format (meta: plus one spec field). All documents are",
        `written together or not at all (at most ${MAX_APPLY_DOCUMENTS}); unchanged documents get no new revision.`,
        "",
        "A manifest (-c) holds stack_application_template, stack_infrastructure_template, params, secrets,",
        "service_params, service_secrets, replicas, tags, services and stages; options such as -p, -t, -r, --secret",
        "and --service override it. The instance is created when it does not exist, else updated (its extra",
        "services become exactly the manifest's).",
        "",
        "Examples:",
        "  stackl apply -f ./documents/",
        "  stackl apply -f zones.yaml -f services/ --dry-run",
        "  stackl apply -c shop.yaml shop -w",
        "  stackl apply -c shop.yaml shop -p app_version=2.6.0 --dry-run",
      ].join("\n"),
    );
  addClientOptions(command);
  command.action((name: string | undefined, opts: ApplyOptions) =>
    runClientCommand(command, (ctx) => {
      if (opts.configFile !== undefined) {
        if (opts.file !== undefined)
          throw new UsageError("use either -f (documents) or -c (a stack instance manifest)");
        return applyManifest(ctx, opts.configFile, name, opts);
      }
      if (opts.file === undefined)
        throw new UsageError("name documents with -f FILE|DIR, or a manifest with -c MANIFEST NAME");
      if (name !== undefined)
        throw new UsageError(`unexpected argument ${JSON.stringify(name)}: a NAME goes with -c MANIFEST`);
      const instanceOnly = instanceOptionsGiven(opts);
      if (instanceOnly.length > 0)
        throw new UsageError(
          `${instanceOnly.join(", ")} ${instanceOnly.length === 1 ? "goes" : "go"} only with -c MANIFEST`,
        );
      if (opts.output === "yaml") throw new UsageError("-o yaml goes with -c; apply -f prints text or json");
      return apply(ctx, { ...opts, file: opts.file });
    }),
  );
}

/** The options of `apply -c` that were given (they make no sense with -f). */
function instanceOptionsGiven(opts: ApplyOptions): string[] {
  const given: [unknown, string][] = [
    [opts.params, "-p"],
    [opts.secret ?? opts.secrets, "--secret"],
    [opts.serviceParam ?? opts.serviceParams, "--service-param"],
    [opts.serviceSecret ?? opts.serviceSecrets, "--service-secret"],
    [opts.tags, "-t"],
    [opts.replicas, "-r"],
    [opts.service ?? opts.services, "--service"],
    [opts.stage, "--stage"],
    [opts.watch ?? opts.showProgress, "-w"],
    [opts.wait, "--wait"],
  ];
  return given.filter(([v]) => v !== undefined).map(([, flag]) => flag);
}

async function apply(ctx: CommandContext, opts: ApplyOptions & { file: string[] }): Promise<number> {
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

  // Policy templates: compiled here with a local opa when there is one (Rego errors then name the file), so the
  // server needs no opa binary; otherwise the server compiles them (or stores them uncompiled, saying so).
  const opa = process.env.STACKL_OPA_PATH || findOpa();
  if (opa !== undefined) {
    for (const d of documents) {
      const t = d.doc.spec.case === "policyTemplate" ? d.doc.spec.value : undefined;
      if (t === undefined || t.bundle.length > 0 || t.policy === "") continue;
      try {
        const compiled = await compileRegoPolicy({
          name: d.doc.meta?.name ?? "",
          source: t.policy,
          regoVersion: t.regoVersion === "v1" ? "v1" : t.regoVersion === "v0" ? "v0" : "auto",
          opaPath: opa,
          signal: ctx.signal,
        });
        t.bundle = compiled.bundle;
      } catch (err) {
        ctx.warn(`${ctx.errStyle.red("error:")} ${d.source}: ${err instanceof Error ? err.message : String(err)}
`);
        return EXIT_FAILURE;
      }
    }
  }

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

// ---------------------------------------------------------------------------------------------------------------------
// apply -c MANIFEST NAME

async function readStdinText(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * The original `stackl apply -c MANIFEST NAME`: GetStackInstance, then CreateStackInstance when it does not exist (or
 * was deleted), else UpdateStackInstance with the manifest (extra services become exactly the manifest's).
 */
async function applyManifest(
  ctx: CommandContext,
  file: string,
  nameArgument: string | undefined,
  opts: ApplyOptions,
): Promise<number> {
  const shown = file === "-" ? "(stdin)" : file;
  const read = readManifest(file, file === "-" ? await readStdinText() : undefined);
  for (const warning of read.warnings) ctx.warn(`${ctx.errStyle.yellow("warning:")} ${shown}: ${warning}\n`);
  const manifest = read.manifest;
  if (manifest === undefined) {
    ctx.warn(
      `${ctx.errStyle.red("error:")} ${plural(read.problems.length, "problem")} in the manifest; nothing was sent:\n`,
    );
    for (const problem of read.problems) ctx.warn(`  ${formatManifestProblem(shown, problem)}\n`);
    return EXIT_FAILURE;
  }
  const name = nameArgument ?? manifest.name;
  if (name === undefined) throw new UsageError("name the stack instance: stackl apply -c MANIFEST NAME");
  const input = mergeInput(manifest.input, inputFromOptions(opts));
  const output = opts.output === "text" || opts.output === undefined ? "table" : opts.output;
  const run: RunOptions = {
    output,
    ...(opts.watch === true || opts.showProgress === true ? { watch: true } : {}),
    ...(opts.wait === undefined ? {} : { wait: opts.wait }),
  };
  const current = await findInstance(ctx, name);
  const exists = current !== undefined && current.state !== StackInstanceState.DELETED;

  const missing = (key: string): number => {
    ctx.warn(
      `${ctx.errStyle.red("error:")} ${shown}: ${key}: is required to create stack instance ${name}; nothing was sent\n`,
    );
    return EXIT_FAILURE;
  };
  if (exists) {
    const mismatch = (
      [
        ["stack_application_template", manifest.sat, current.stackApplicationTemplate],
        ["stack_infrastructure_template", manifest.sit, current.stackInfrastructureTemplate],
      ] as const
    ).find(([, wanted, actual]) => wanted !== undefined && wanted !== actual);
    if (mismatch !== undefined) {
      ctx.warn(
        `${ctx.errStyle.red("error:")} ${shown}: ${mismatch[0]}: stack instance ${name} uses ${JSON.stringify(mismatch[2])}, ` +
          `not ${JSON.stringify(mismatch[1])}; templates are fixed at create (delete and re-create it to change them)\n`,
      );
      return EXIT_FAILURE;
    }
  }
  if (opts.dryRun === true) {
    const sat = exists ? current.stackApplicationTemplate : manifest.sat;
    const sit = exists ? current.stackInfrastructureTemplate : manifest.sit;
    if (sat === undefined) return missing("stack_application_template");
    if (sit === undefined) return missing("stack_infrastructure_template");
    const wanted = exists ? { ...mergeInput(storedInput(current), input), services: input.services } : input;
    const { plan } = await ctx.clients.stackInstances.planStackInstance(
      { spec: specOf(name, sat, sit, wanted) },
      { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
    );
    if (plan === undefined) throw new Error("the server returned no plan");
    if (output === "table") {
      ctx.print(`dry run: stack instance ${name} would be ${exists ? "updated" : "created"}; nothing was changed\n`);
      const stages = wanted.stages.length > 0 ? wanted.stages : await templateStages(ctx, sat);
      ctx.print(planText(plan, { stages, style: ctx.style }));
    } else printMessage(ctx, PlanSchema, plan, output);
    return plan.fulfilled ? EXIT_OK : EXIT_FAILURE;
  }
  if (!exists) {
    if (manifest.sat === undefined) return missing("stack_application_template");
    if (manifest.sit === undefined) return missing("stack_infrastructure_template");
    return createInstance(ctx, name, manifest.sat, manifest.sit, input, run, "create");
  }
  return updateInstance(ctx, current, input, { ...run, disableInvocation: false }, "update");
}
