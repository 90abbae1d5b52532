/**
 * Errors of RPCs as the client commands print them: the server's message, every field violation on its own line
 * (decoded from the `stackl.v1.ErrorInfo` details the server attaches), and structured details such as the referrers
 * of a document that cannot be deleted.
 */
import { type JsonObject, type JsonValue, toJson } from "@bufbuild/protobuf";
import { StructSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../../gen/stackl/v1/tasks_pb.js";
import { PLAIN, type Style } from "./style.js";

export interface FieldProblem {
  field: string;
  message: string;
}

/** A failed RPC, decoded. */
export interface RpcFailure {
  code: Code;
  /** `invalid_argument`, `not_found`, … */
  codeName: string;
  /** The server's message without the `[code]` prefix. */
  message: string;
  /** Field violations (ErrorInfo details with a field). */
  violations: FieldProblem[];
  /** Structured details (Struct details, merged). */
  details: JsonObject;
  /** True when the server answered (it attached STACKL error details); false for transport failures. */
  fromServer: boolean;
}

/** One document that refers to another (FAILED_PRECONDITION on delete). */
export interface Referrer {
  kind: string;
  name: string;
  field: string;
}

/** The decoded failure, or undefined when `err` is not a ConnectError. */
export function rpcFailureOf(err: unknown): RpcFailure | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  const infos = err.findDetails(ErrorInfoSchema);
  const details: JsonObject = {};
  for (const struct of err.findDetails(StructSchema)) Object.assign(details, toJson(StructSchema, struct));
  return {
    code: err.code,
    codeName: codeName(err.code),
    message: err.rawMessage,
    violations: infos.filter((i) => i.field !== "").map((i) => ({ field: i.field, message: i.message })),
    details,
    fromServer: infos.length > 0,
  };
}

/** `InvalidArgument` → `invalid_argument`. */
export function codeName(code: Code): string {
  const name = Code[code] ?? `code_${code}`;
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** The referrers listed in a FAILED_PRECONDITION's details, if any. */
export function referrersOf(failure: RpcFailure): Referrer[] {
  const list = failure.details.referrers;
  if (!Array.isArray(list)) return [];
  return list.flatMap((item: JsonValue) => {
    if (typeof item !== "object" || item === null || Array.isArray(item)) return [];
    const { kind, name, field } = item as Record<string, JsonValue>;
    return typeof kind === "string" && typeof name === "string"
      ? [{ kind, name, field: typeof field === "string" ? field : "" }]
      : [];
  });
}

export interface RenderErrorOptions {
  /** The server URL (named when it cannot be reached). */
  server: string;
  /** How to print one violation. @default `field: message` */
  violationLine?: (v: FieldProblem) => string;
  /** Printed instead of the server's message when there are violations. @default the server's message */
  violationsHeader?: string;
  /** Added after everything else (e.g. "nothing was written"). */
  footer?: string;
  style?: Style;
}

/** Lines for stderr describing `err` (any error), each ending in a newline. */
export function renderError(err: unknown, options: RenderErrorOptions): string {
  const style = options.style ?? PLAIN;
  const failure = rpcFailureOf(err);
  const prefix = style.red("error:");
  if (failure === undefined) {
    return `${prefix} ${err instanceof Error ? err.message : String(err)}\n`;
  }
  const lines: string[] = [];
  switch (failure.code) {
    case Code.Unavailable:
      if (!failure.fromServer) {
        lines.push(`${prefix} cannot reach the STACKL server at ${options.server}: ${failure.message}`);
        lines.push("  start one with `stackl dev`, or point --server (or STACKL_SERVER) at a running server");
        return lines.map((l) => `${l}\n`).join("");
      }
      break;
    case Code.DeadlineExceeded:
      if (!failure.fromServer) {
        lines.push(`${prefix} the server at ${options.server} did not answer in time (${failure.message})`);
        return lines.map((l) => `${l}\n`).join("");
      }
      break;
    case Code.Canceled:
      if (!failure.fromServer) return `${prefix} interrupted\n`;
      break;
    case Code.Unimplemented:
      lines.push(`${prefix} the server at ${options.server} does not support this yet: ${failure.message}`);
      return lines.map((l) => `${l}\n`).join("");
    default:
      break;
  }
  const line = options.violationLine ?? ((v: FieldProblem) => `${v.field}: ${v.message}`);
  const [only] = failure.violations;
  if (only !== undefined && failure.violations.length === 1 && options.violationsHeader === undefined) {
    lines.push(`${prefix} ${line(only)}`);
  } else if (failure.violations.length > 0) {
    lines.push(`${prefix} ${options.violationsHeader ?? "the server rejected the request:"}`);
    for (const v of failure.violations) lines.push(`  ${line(v)}`);
  } else {
    lines.push(`${prefix} ${failure.message} [${failure.codeName}]`);
  }
  const referrers = referrersOf(failure);
  if (referrers.length > 0 && failure.violations.length === 0) {
    lines.length = 0;
    lines.push(`${prefix} ${failure.message.replace(/ is referenced by .*$/, "")} is still referenced by:`);
    const refs = referrers.map((r) => `${r.kind}/${r.name}`);
    const width = Math.max(...refs.map((r) => r.length));
    referrers.forEach((r, i) => {
      const ref = refs[i] ?? "";
      lines.push(`  ${r.field === "" ? ref : `${ref.padEnd(width)}   at ${r.field}`}`);
    });
    lines.push("delete or change those documents first");
  }
  if (options.footer !== undefined) lines.push(options.footer);
  return lines.map((l) => `${l}\n`).join("");
}
