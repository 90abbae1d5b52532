import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { Argument, type Command, Option } from "commander";
import { ApplyAction, type Document } from "../../../gen/stackl/v1/documents_pb.js";
import { type DocumentKind, describeKinds, kindOf, protoKindOf } from "../../domain/document-kinds.js";
import { parseDocumentText } from "../../domain/stackl-format.js";
import { addClientOptions } from "../client.js";
import { addParsed, fileField, formatMappedViolation, formatProblem, type LoadResult, mapViolation } from "../files.js";
import { parseKindArgument } from "../output/arguments.js";
import {
  type CommandContext,
  EXIT_FAILURE,
  EXIT_OK,
  runClientCommand,
  UNARY_TIMEOUT_MS,
} from "../output/command-context.js";
import { DOCUMENT_SHAPES, type DocumentShape, documentRef, shapedObject, toYaml } from "../output/documents.js";
import { renderError, rpcFailureOf } from "../output/errors.js";

/** The editor when neither VISUAL nor EDITOR is set. */
export const DEFAULT_EDITOR = "vi";

interface EditOptions {
  format?: DocumentShape;
  server?: string;
}

/** `stackl edit KIND NAME`: fetch, edit in $VISUAL/$EDITOR, apply with the fetched revision as expected. */
export function register(program: Command): void {
  const command = program
    .command("edit")
    .description("edit a document in $VISUAL or $EDITOR (default vi) and apply it if it changed")
    .addArgument(new Argument("<kind>", `document kind or alias (${describeKinds()})`).argParser(parseKindArgument))
    .argument("<name>", "document name")
    .addOption(
      new Option("--format <shape>", "shape to edit: stackl (original type:/category: file) or native (API shape)")
        .choices([...DOCUMENT_SHAPES])
        .default("stackl"),
    )
    .addHelpText(
      "after",
      [
        "",
        "The document is written to a temporary YAML file and opened in the editor. When the editor exits the",
        "file is applied, but only if the document is still at the revision that was fetched; if someone else",
        "changed it meanwhile, or the file is invalid, the file is kept and its path printed so nothing is lost.",
        "An unchanged or emptied file applies nothing. The editor command may include arguments (EDITOR='code -w').",
      ].join("\n"),
    );
  addClientOptions(command);
  command.action((kind: DocumentKind, name: string, opts: EditOptions) =>
    runClientCommand(command, (ctx) => edit(ctx, kind, name, opts)),
  );
}

async function edit(ctx: CommandContext, kind: DocumentKind, name: string, opts: EditOptions): Promise<number> {
  const shape = opts.format ?? "stackl";
  const { document } = await ctx.clients.documents.getDocument(
    { kind: protoKindOf(kind), name, revision: 0n },
    { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
  );
  if (document === undefined) throw new Error(`the server returned no document for ${kind}/${name}`);
  const revision = document.meta?.revision ?? 0n;
  const ref = documentRef(kind, name);
  const original =
    editHeader(ref, revision, shape) + toYaml(shapedObject(document, shape, { outputOnly: false }), shape);

  const dir = await mkdtemp(path.join(tmpdir(), "stackl-edit-"));
  const file = path.join(dir, `${kind}-${name}.yaml`);
  await writeFile(file, original, { mode: 0o600 });
  const discard = (): Promise<void> => rm(dir, { recursive: true, force: true });
  const kept = (): string => `your edit is kept in ${file}`;

  const editor = ctx.env.VISUAL || ctx.env.EDITOR || DEFAULT_EDITOR;
  const status = await runEditor(editor, file);
  const edited = await readFile(file, "utf8");
  if (status !== 0) {
    const unchanged = edited === original;
    if (unchanged) await discard();
    ctx.warn(
      `${ctx.errStyle.red("error:")} the editor (${editor}) exited with ${status}; nothing was applied` +
        `${unchanged ? "" : `; ${kept()}`}\n`,
    );
    return EXIT_FAILURE;
  }
  if (edited === original) {
    await discard();
    ctx.print(`Edit cancelled: ${ref} was not changed.\n`);
    return EXIT_OK;
  }

  const loaded: LoadResult = { files: [file], documents: [], problems: [], warnings: [] };
  addParsed(loaded, file, parseDocumentText(edited, file));
  for (const warning of loaded.warnings) ctx.warn(`${ctx.errStyle.yellow("warning:")} ${warning}\n`);
  if (loaded.problems.length === 0 && loaded.documents.length === 0) {
    await discard();
    ctx.print(`Edit cancelled: the file is empty; ${ref} was not changed.\n`);
    return EXIT_OK;
  }
  const problems = [...loaded.problems.map(formatProblem), ...identityProblems(loaded, kind, name)];
  if (problems.length > 0) {
    ctx.warn(`${ctx.errStyle.red("error:")} the edited file is not valid; nothing was applied:\n`);
    for (const problem of problems) ctx.warn(`  ${problem}\n`);
    ctx.warn(`${kept()}\nfix it and run \`stackl apply -f ${file}\`, or run \`stackl edit\` again\n`);
    return EXIT_FAILURE;
  }
  const [edit] = loaded.documents;
  if (edit === undefined) throw new Error("unreachable: no document after checks");

  try {
    const { results } = await ctx.clients.documents.applyDocuments(
      { documents: [{ document: edit.doc, expectedRevision: revision }] },
      { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
    );
    const result = results[0];
    await discard();
    if (result === undefined || result.action === ApplyAction.UNCHANGED) {
      ctx.print(`${ctx.style.dim("unchanged")}  ${ref}  (revision ${result?.revision ?? revision})\n`);
    } else {
      ctx.print(`${ctx.style.yellow("updated")}  ${ref}  (revision ${result.revision})\n`);
    }
    return EXIT_OK;
  } catch (err) {
    const failure = rpcFailureOf(err);
    if (failure?.code === Code.Aborted) {
      ctx.warn(
        `${ctx.errStyle.red("error:")} ${ref} was changed by someone else after revision ${revision} was fetched; ` +
          "nothing was applied.\n" +
          `${kept()}\nrun \`stackl edit ${kind} ${name}\` again to start from the newest revision, ` +
          `or \`stackl apply -f ${file}\` to overwrite the other change\n`,
      );
      return EXIT_FAILURE;
    }
    ctx.warn(
      renderError(err, {
        server: ctx.server,
        style: ctx.errStyle,
        violationsHeader: "the server rejected the edit; nothing was applied:",
        violationLine: (v) => formatMappedViolation(mapViolation(v, loaded.documents)),
        footer: err instanceof ConnectError ? kept() : undefined,
      }),
    );
    return EXIT_FAILURE;
  }
}

function editHeader(ref: string, revision: bigint, shape: DocumentShape): string {
  return [
    `# Editing ${ref} (revision ${revision}, ${shape} format). Save and close the editor to apply it.`,
    "# Lines starting with # are ignored. An unchanged or empty file applies nothing; the edit is refused",
    "# if someone else changes the document in the meantime (the file is then kept).",
    "",
  ].join("\n");
}

/** The edited file must hold exactly the document that was fetched: one document, same kind, same name. */
function identityProblems(loaded: LoadResult, kind: DocumentKind, name: string): string[] {
  if (loaded.problems.length > 0) return [];
  if (loaded.documents.length > 1) {
    return [`${loaded.files[0] ?? "file"}: holds ${loaded.documents.length} documents; edit one document at a time`];
  }
  const problems: string[] = [];
  for (const d of loaded.documents) {
    const editedKind = kindOf(d.doc as Document);
    const editedName = d.doc.meta?.name ?? "";
    if (editedKind !== kind) {
      const field = d.format === "stackl" ? "type" : "spec";
      problems.push(
        `${d.source}: ${field}: the kind changed from ${kind} to ${editedKind ?? "none"}; edit cannot change it`,
      );
    }
    if (editedName !== name) {
      problems.push(
        `${d.source}: ${fileField("meta.name", d.format)}: the name changed from ${JSON.stringify(name)} to ${JSON.stringify(editedName)}; ` +
          "edit cannot rename (apply a new document and delete the old one)",
      );
    }
  }
  return problems;
}

/** Runs the editor on `file` through the shell (so EDITOR may carry arguments); resolves with its exit status. */
export function runEditor(editor: string, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child =
      process.platform === "win32"
        ? spawn(`${editor} "${file}"`, { shell: true, stdio: "inherit" })
        : spawn("/bin/sh", ["-c", `${editor} "$@"`, editor, file], { stdio: "inherit" });
    child.once("error", reject);
    child.once("exit", (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  });
}
