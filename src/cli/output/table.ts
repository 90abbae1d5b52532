/**
 * Plain aligned tables (kubectl style): an upper-case header, columns separated by three spaces, no borders. Widths
 * are measured without color codes, so cells may be styled.
 */
import { PLAIN, type Style, stripAnsi } from "./style.js";

export interface Column<T> {
  header: string;
  /** The cell text (plain). */
  value: (row: T) => string;
  /** Styling applied after padding is computed (the text passed in is the plain cell). @default none */
  color?: (text: string, row: T, style: Style) => string;
  /** Longer cells are cut to this many characters, ending in `…`. @default unlimited */
  maxWidth?: number;
  /** @default "left" */
  align?: "left" | "right";
}

const GAP = "   ";

/** The rows as a table (header first), each line ending in a newline; the empty string for no columns. */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[], style: Style = PLAIN): string {
  if (columns.length === 0) return "";
  const cells = rows.map((row) => columns.map((c) => truncate(oneLine(c.value(row)), c.maxWidth)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => visibleLength(r[i] ?? ""))));
  const line = (texts: readonly string[], paint: (text: string, i: number) => string): string =>
    texts
      .map((text, i) => {
        const width = widths[i] ?? 0;
        const pad = " ".repeat(Math.max(0, width - visibleLength(text)));
        const last = i === texts.length - 1;
        const painted = paint(text, i);
        if (columns[i]?.align === "right") return pad + painted;
        return last ? painted : painted + pad;
      })
      .join(GAP)
      .trimEnd();
  const out = [
    line(
      columns.map((c) => c.header),
      (text) => style.bold(text),
    ),
  ];
  rows.forEach((row, r) => {
    const texts = cells[r] ?? [];
    out.push(line(texts, (text, i) => columns[i]?.color?.(text, row, style) ?? text));
  });
  return `${out.join("\n")}\n`;
}

/** `text` cut to `max` characters, ending in `…` when cut. */
export function truncate(text: string, max: number | undefined): string {
  if (max === undefined || text.length <= max) return text;
  if (max <= 1) return "…".slice(0, max);
  return `${text.slice(0, max - 1)}…`;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ");
}

function visibleLength(text: string): number {
  return stripAnsi(text).length;
}

/** `key: value` lines with the values aligned (for one object's details). Empty values are skipped. */
export function renderFields(fields: readonly (readonly [string, string])[], style: Style = PLAIN): string {
  const shown = fields.filter(([, value]) => value !== "");
  const width = Math.max(0, ...shown.map(([key]) => key.length + 1));
  return shown
    .map(([key, value]) => {
      const label = `${key}:`.padEnd(width);
      const indent = " ".repeat(width + 2);
      return `${style.bold(label)}  ${value.split("\n").join(`\n${indent}`)}\n`;
    })
    .join("");
}
