/** Revision history as `stackl history` prints it: a table, or a log with the field changes of every revision. */
import { type JsonValue, toJson } from "@bufbuild/protobuf";
import { type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { ChangeType, type DocumentRevision, type FieldChange } from "../../../gen/stackl/v1/documents_pb.js";
import { PLAIN, type Style } from "./style.js";
import { renderTable, truncate } from "./table.js";
import { formatTimestamp } from "./time.js";

/** Longest value shown in a change line. */
const VALUE_MAX = 120;

/** REVISION, OPERATION, AUTHOR, TIME, CHANGES (count), newest first as given. */
export function revisionsTable(revisions: readonly DocumentRevision[], style: Style = PLAIN): string {
  return renderTable(
    revisions,
    [
      { header: "REVISION", value: (r) => String(r.revision), align: "right" },
      { header: "OPERATION", value: operationText, color: (text, r) => operationColor(r, style)(text) },
      { header: "AUTHOR", value: (r) => r.author || "-" },
      { header: "TIME", value: (r) => formatTimestamp(r.createTime) || "-" },
      { header: "CHANGES", value: (r) => String(r.changes.length), align: "right" },
    ],
    style,
  );
}

function operationText(r: DocumentRevision): string {
  return r.operation === "restore" && r.restoredFrom > 0n ? `restore (of ${r.restoredFrom})` : r.operation;
}

function operationColor(r: DocumentRevision, style: Style): (text: string) => string {
  switch (r.operation) {
    case "delete":
      return style.red;
    case "restore":
      return style.cyan;
    default:
      return (text) => text;
  }
}

/** Every revision with its changes: `revision 3  apply  by alice  2024-…` then `  ~ path: before -> after` lines. */
export function revisionsLog(revisions: readonly DocumentRevision[], style: Style = PLAIN): string {
  return revisions
    .map((r) => {
      const head = [
        style.bold(`revision ${r.revision}`),
        operationColor(r, style)(operationText(r)),
        r.author === "" ? "" : `by ${r.author}`,
        formatTimestamp(r.createTime),
      ]
        .filter((part) => part !== "")
        .join("  ");
      const changes =
        r.changes.length === 0
          ? [style.dim("  (no field changes)")]
          : r.changes.map((c) => `  ${changeLine(c, style)}`);
      return [head, ...changes].join("\n");
    })
    .map((block) => `${block}\n`)
    .join("\n");
}

/** `~ path: before -> after`, `+ path: after`, `- path: before` (values as compact JSON). */
export function changeLine(change: FieldChange, style: Style = PLAIN): string {
  const path = change.path === "" ? "(document)" : change.path;
  const before = valueText(change.before);
  const after = valueText(change.after);
  // The whole document appearing (first write, restore after a deletion) or disappearing (deletion).
  if (change.path === "" && change.type === ChangeType.CHANGED) {
    if (before === "null") return style.green(`+ ${path}: ${after}`);
    if (after === "null") return style.red(`- ${path}: ${before}`);
  }
  switch (change.type) {
    case ChangeType.ADDED:
      return style.green(`+ ${path}: ${after}`);
    case ChangeType.REMOVED:
      return style.red(`- ${path}: ${before}`);
    case ChangeType.CHANGED:
      return style.yellow(`~ ${path}: ${before} -> ${after}`);
    case ChangeType.UNSPECIFIED:
      return `? ${path}: ${before} -> ${after}`;
    default: {
      const never: never = change.type;
      return `? ${path} (${String(never)})`;
    }
  }
}

function valueText(value: Value | undefined): string {
  if (value === undefined) return "null";
  const json: JsonValue = toJson(ValueSchema, value);
  return truncate(JSON.stringify(json), VALUE_MAX);
}
