/**
 * Terminal styling for the client commands: ANSI colors only when the stream is a TTY, `NO_COLOR` is unset or empty
 * (https://no-color.org) and `TERM` is not `dumb`; `FORCE_COLOR` (non-empty, not `0`) turns them on anyway.
 */

/** The streams the client commands write to: stdout/stderr, or a capturing fake in tests. */
export interface OutputStream {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
  /** Terminal width when a TTY. */
  readonly columns?: number;
}

export interface Style {
  readonly enabled: boolean;
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
}

/** Whether ANSI colors belong on `stream` in the environment `env`. */
export function colorEnabled(
  stream: Pick<OutputStream, "isTTY">,
  env: Readonly<Record<string, string | undefined>> = process.env,
): boolean {
  if ((env.NO_COLOR ?? "") !== "") return false;
  const force = env.FORCE_COLOR ?? "";
  if (force !== "" && force !== "0" && force !== "false") return true;
  return stream.isTTY === true && env.TERM !== "dumb";
}

const wrap =
  (enabled: boolean, open: number, close: number) =>
  (text: string): string =>
    enabled && text !== "" ? `\u001b[${open}m${text}\u001b[${close}m` : text;

export function createStyle(enabled: boolean): Style {
  return {
    enabled,
    bold: wrap(enabled, 1, 22),
    dim: wrap(enabled, 2, 22),
    red: wrap(enabled, 31, 39),
    green: wrap(enabled, 32, 39),
    yellow: wrap(enabled, 33, 39),
    cyan: wrap(enabled, 36, 39),
  };
}

/** The style for `stream` (colors per `colorEnabled`). */
export function styleFor(
  stream: Pick<OutputStream, "isTTY">,
  env?: Readonly<Record<string, string | undefined>>,
): Style {
  return createStyle(colorEnabled(stream, env));
}

/** A style that never colors: for JSON/YAML output and tests. */
export const PLAIN: Style = createStyle(false);

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escape sequences is the point.
const ANSI = /\u001b\[[0-9;]*m/g;

/** `text` without ANSI color sequences. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, "");
}
