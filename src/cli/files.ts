/**
 * Document files for `stackl apply -f` and `stackl edit`: expands files and directories (recursively, sorted,
 * `.yaml`/`.yml`/`.json` only, dot-files skipped), parses them with the shared document reader (STACKL `type:` files
 * load unchanged, native `meta:` files too), and maps field paths of the server's violations
 * (`documents[3].document.service.functional_requirements[1]`) back to the file and document they came from
 * (`services/web.yml#1: functional_requirements[1]`).
 */
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import path from "node:path";
import type { Document } from "../../gen/stackl/v1/documents_pb.js";
import { DOCUMENT_KINDS } from "../domain/document-kinds.js";
import { type DocumentFormat, type ParsedDocument, parseDocumentText } from "../domain/stackl-format.js";

/** Files a directory contributes. */
export const DOCUMENT_FILE_PATTERN = /\.(?:ya?ml|json)$/i;

/** `-f -` reads standard input (as YAML). */
export const STDIN_PATH = "-";

/** One document ready to send, and where it came from. */
export interface LoadedDocument {
  /** `services/web.yml#1`: the file (as shown) and the document's position in it. */
  source: string;
  /** The file as shown (relative to the working directory when under it). */
  file: string;
  format: DocumentFormat;
  doc: Document;
}

/** Something wrong with a file or a document, found before anything was sent. */
export interface FileProblem {
  /** `file.yaml#2`, or the file alone when the file itself is the problem. */
  source: string;
  /** Path inside the document, `` for the document or file as a whole. */
  field: string;
  message: string;
}

export interface LoadResult {
  /** Files read, as shown, in load order. */
  files: string[];
  documents: LoadedDocument[];
  problems: FileProblem[];
  /** Ignored or reinterpreted fields, `source.field: message`. */
  warnings: string[];
}

export interface LoadOptions {
  /** Paths are shown relative to this directory when under it. @default process.cwd() */
  cwd?: string;
  /** Reads standard input for `-`. @default reads process.stdin */
  readStdin?: () => Promise<string>;
}

/** `file#2: field: message` (or `file#2: message` for the whole document). */
export function formatProblem(problem: FileProblem): string {
  return problem.field === ""
    ? `${problem.source}: ${problem.message}`
    : `${problem.source}: ${problem.field}: ${problem.message}`;
}

/** The path as shown to the user: relative to `cwd` when under it, absolute otherwise. */
export function displayPath(file: string, cwd: string): string {
  const abs = path.resolve(cwd, file);
  const rel = path.relative(cwd, abs);
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : abs;
}

/**
 * The files named by `inputs`, in the order given: files as given (any extension), directories walked recursively
 * and sorted by path (only `.yaml`, `.yml`, `.json`; names starting with `.` skipped; symlinks followed once). A file reached twice is
 * read once. Missing paths and directories without document files are problems.
 */
export async function expandPaths(
  inputs: readonly string[],
  cwd: string = process.cwd(),
): Promise<{ files: string[]; problems: FileProblem[] }> {
  const files: string[] = [];
  const problems: FileProblem[] = [];
  const seen = new Set<string>();
  const add = async (abs: string): Promise<void> => {
    const real = await realpath(abs).catch(() => abs);
    if (seen.has(real)) return;
    seen.add(real);
    files.push(displayPath(abs, cwd));
  };
  for (const input of inputs) {
    if (input === STDIN_PATH) {
      if (!seen.has(STDIN_PATH)) files.push(STDIN_PATH);
      seen.add(STDIN_PATH);
      continue;
    }
    const abs = path.resolve(cwd, input);
    const info = await stat(abs).catch((err: NodeJS.ErrnoException) => err);
    if (info instanceof Error) {
      problems.push({ source: input, field: "", message: fsMessage(info) });
      continue;
    }
    if (info.isDirectory()) {
      const found = (await walk(abs, new Set())).sort(compare);
      if (found.length === 0) {
        problems.push({ source: input, field: "", message: "no .yaml, .yml or .json files in this directory" });
      }
      for (const file of found) await add(file);
    } else {
      await add(abs);
    }
  }
  return { files, problems };
}

/** Document files under `dir` (unsorted). */
async function walk(dir: string, visited: Set<string>): Promise<string[]> {
  const real = await realpath(dir).catch(() => dir);
  if (visited.has(real)) return []; // a symlink loop
  visited.add(real);
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith("."));
  const out: string[] = [];
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    let isDir = entry.isDirectory();
    let isFile = entry.isFile();
    if (entry.isSymbolicLink()) {
      const target = await stat(full).catch(() => undefined);
      isDir = target?.isDirectory() ?? false;
      isFile = target?.isFile() ?? false;
    }
    if (isDir) out.push(...(await walk(full, visited)));
    else if (isFile && DOCUMENT_FILE_PATTERN.test(entry.name)) out.push(full);
  }
  return out;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function fsMessage(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case "ENOENT":
      return "no such file or directory";
    case "EACCES":
      return "permission denied";
    default:
      return err.message;
  }
}

/** Reads and parses every file named by `inputs` (see `expandPaths`). Nothing is sent anywhere. */
export async function loadDocuments(inputs: readonly string[], options: LoadOptions = {}): Promise<LoadResult> {
  const cwd = options.cwd ?? process.cwd();
  const { files, problems } = await expandPaths(inputs, cwd);
  const result: LoadResult = { files, documents: [], problems, warnings: [] };
  for (const file of files) {
    let text: string;
    try {
      text =
        file === STDIN_PATH
          ? await (options.readStdin ?? readStdin)()
          : await readFile(path.resolve(cwd, file), "utf8");
    } catch (err) {
      const message = err instanceof Error ? fsMessage(err as NodeJS.ErrnoException) : String(err);
      result.problems.push({ source: file, field: "", message });
      continue;
    }
    addParsed(result, file, parseDocumentText(text, file === STDIN_PATH ? "stdin" : file));
  }
  return result;
}

/** Adds parsed documents of one file to `result` (documents, problems, warnings). */
export function addParsed(result: LoadResult, file: string, parsed: readonly ParsedDocument[]): void {
  for (const p of parsed) {
    result.warnings.push(...p.warnings);
    if (p.violations.length > 0 || p.doc === undefined || p.format === undefined) {
      for (const v of p.violations) {
        result.problems.push({ source: p.path, field: relativeField(v.field, p.path), message: v.message });
      }
      if (p.violations.length === 0) {
        result.problems.push({ source: p.path, field: "", message: "not a document" });
      }
      continue;
    }
    result.documents.push({ source: p.path, file, format: p.format, doc: p.doc });
  }
}

/** `field` without the document path in front (`web.yml#1.params` → `params`; the path itself → ``). */
export function relativeField(field: string, docPath: string): string {
  if (field === docPath) return "";
  if (field.startsWith(`${docPath}.`)) return field.slice(docPath.length + 1);
  if (field.startsWith(`${docPath}[`)) return field.slice(docPath.length);
  return field;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString("utf8");
}

// ---------------------------------------------------------------------------------------------------------------------
// Server paths back to files

/** A violation reported by the server, placed in the file and document it concerns when it names one. */
export interface MappedViolation {
  /** `services/web.yml#1`, or undefined when the field names no document of the batch. */
  source?: string;
  /** The field inside that document in the file's own terms, or the server's field when unmapped. */
  field: string;
  message: string;
}

const BATCH_PATH = /^documents\[(\d+)\](?:\.document)?(?:\.(.*))?$/;
const BATCH_REFERENCE = /documents\[(\d+)\](?:\.document)?/g;

/**
 * Maps a field path of an ApplyDocuments error (`documents[i].document.<kind>.<field>`, `documents[i].expected_revision`)
 * to the document `documents[i]` of the batch; batch paths inside the message (`first at documents[3]`) are replaced
 * by their sources too.
 */
export function mapViolation(
  violation: { field: string; message: string },
  documents: readonly Pick<LoadedDocument, "source" | "format">[],
): MappedViolation {
  const message = violation.message.replace(BATCH_REFERENCE, (whole, index: string) => {
    return documents[Number(index)]?.source ?? whole;
  });
  const match = BATCH_PATH.exec(violation.field);
  const doc = match === null ? undefined : documents[Number(match[1])];
  if (match === null || doc === undefined) return { field: violation.field, message };
  return { source: doc.source, field: fileField(match[2] ?? "", doc.format), message };
}

const SPEC_FIELDS = new Set(DOCUMENT_KINDS.map((k) => k.kind));

/**
 * A server field path inside one document (`service.functional_requirements[1]`, `meta.name`) in the terms of a
 * file of `format`: STACKL files have the metadata and the spec's fields at the top (`name`,
 * `functional_requirements[1]`); native files use the API paths unchanged.
 */
export function fileField(field: string, format: DocumentFormat): string {
  if (format === "native") return field;
  const meta = /^meta(?:\.(.*))?$/.exec(field);
  if (meta !== null) return meta[1] ?? "";
  const [head] = field.split(/[.[]/, 1);
  if (head !== undefined && SPEC_FIELDS.has(head as never)) {
    return field.slice(head.length).replace(/^\./, "");
  }
  if (field === "spec") return "type";
  return field;
}

/** One line for a mapped violation: `file#2: field: message`. */
export function formatMappedViolation(v: MappedViolation): string {
  if (v.source === undefined) return v.field === "" ? v.message : `${v.field}: ${v.message}`;
  return formatProblem({ source: v.source, field: v.field, message: v.message });
}
