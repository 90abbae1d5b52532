/**
 * What every client command runs inside: the API clients for `--server`, stdout/stderr with their styles, an
 * AbortSignal that Ctrl-C fires, and one place that turns errors into messages and exit codes.
 */
import type { Command } from "commander";
import { Option } from "commander";
import { ConfigError } from "../../config/config-error.js";
import { clientConfigOf, createStacklClients, type StacklClients } from "../client.js";
import { renderError } from "./errors.js";
import { type OutputStream, type Style, styleFor } from "./style.js";

/** Exit codes of the client commands (the same values as `program.ts`). */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** Interrupted by Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

/** Bad arguments found after parsing (an unknown kind, a malformed selector): exit 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export interface CommandContext {
  readonly clients: StacklClients;
  /** The server's base URL. */
  readonly server: string;
  readonly out: OutputStream;
  readonly err: OutputStream;
  /** Style of stdout (colors only on a TTY without NO_COLOR). */
  readonly style: Style;
  /** Style of stderr. */
  readonly errStyle: Style;
  /** Fired by Ctrl-C (SIGINT) and SIGTERM. */
  readonly signal: AbortSignal;
  readonly env: Readonly<Record<string, string | undefined>>;
  now(): number;
  /** Writes to stdout. */
  print(text: string): void;
  /** Writes to stderr. */
  warn(text: string): void;
}

/** Default deadline of one unary RPC. */
export const UNARY_TIMEOUT_MS = 60_000;

/**
 * Runs a client command's body and sets `process.exitCode` from its result: the number it returns (default 0), 1
 * for an error (printed with field paths), 2 for a UsageError, 130 when interrupted. ConfigError (a bad --server) is
 * rethrown for `program.ts` to report.
 */
export async function runClientCommand(
  command: Command,
  body: (ctx: CommandContext) => Promise<number | undefined>,
): Promise<void> {
  const config = clientConfigOf(command);
  const clients = createStacklClients(config);
  const abort = new AbortController();
  const onSignal = (): void => abort.abort(new Error("interrupted"));
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const ctx: CommandContext = {
    clients,
    server: config.server,
    out: process.stdout,
    err: process.stderr,
    style: styleFor(process.stdout),
    errStyle: styleFor(process.stderr),
    signal: abort.signal,
    env: process.env,
    now: () => Date.now(),
    print: (text) => process.stdout.write(text),
    warn: (text) => process.stderr.write(text),
  };
  try {
    process.exitCode = (await body(ctx)) ?? EXIT_OK;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    if (abort.signal.aborted) {
      ctx.warn(`${ctx.errStyle.red("error:")} interrupted\n`);
      process.exitCode = EXIT_INTERRUPTED;
    } else if (err instanceof UsageError) {
      ctx.warn(`${ctx.errStyle.red("error:")} ${err.message}\n(run with --help for usage)\n`);
      process.exitCode = EXIT_USAGE;
    } else {
      ctx.warn(renderError(err, { server: config.server, style: ctx.errStyle }));
      if (process.env.STACKL_DEBUG === "1" && err instanceof Error && err.stack) ctx.warn(`${err.stack}\n`);
      process.exitCode = EXIT_FAILURE;
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** Output formats of commands that print documents or tasks. */
export type OutputFormat = "table" | "yaml" | "json";

/** `-o, --output <format>` limited to `formats`. */
export function outputOption(formats: readonly string[], defaultText: string): Option {
  return new Option("-o, --output <format>", `output format (default: ${defaultText})`).choices([...formats]);
}
