/** Prints result tables as GitHub-flavoured Markdown, so the output can be pasted into BENCHMARKS.md unchanged. */

export type Cell = string | number;

export function markdownTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = rows.map((r) => r.map((c) => String(c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `${"-".repeat(w + 2)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(headers), rule, ...text.map(line)].join("\n");
}

/** Prints a titled table followed by a blank line. */
export function printTable(title: string, headers: readonly string[], rows: readonly (readonly Cell[])[]): void {
  process.stdout.write(`\n### ${title}\n\n${markdownTable(headers, rows)}\n`);
}

/** Prints a line to stderr (progress; kept out of the result tables on stdout). */
export function progress(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
