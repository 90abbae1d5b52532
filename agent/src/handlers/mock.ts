import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { delay } from "../abort.js";
import type { Handler, HandlerJob, HandlerResult } from "../handler.js";

/**
 * `mock`: for tests and demos. `invocation.mock` (a Struct) says what to do:
 * - `log`: a string (or list of strings) written to stdout line by line;
 * - `log_interval_ms`: pause between those lines;
 * - `sleep_ms`: then wait this long (honours cancel and timeout);
 * - `fail`: end with exit code 1 (or `exit_code`) and an error;
 * - `outputs`: the outputs returned (also on failure).
 */
export class MockHandler implements Handler {
  readonly name = "mock";

  async run(job: HandlerJob): Promise<HandlerResult> {
    const mock: JsonObject = job.spec.invocation?.mock ?? {};
    const lines = toLines(mock.log);
    const interval = toNumber(mock.log_interval_ms);
    for (const [i, line] of lines.entries()) {
      job.signal.throwIfAborted();
      await job.log("stdout", `${line}\n`);
      if (interval > 0 && i < lines.length - 1) await delay(interval, job.signal);
    }
    const sleepMs = toNumber(mock.sleep_ms);
    if (sleepMs > 0) await delay(sleepMs, job.signal);
    job.signal.throwIfAborted();
    const outputs = isObject(mock.outputs) ? mock.outputs : {};
    if (mock.fail === true) {
      const code = toNumber(mock.exit_code);
      return { outputs, exitCode: code > 0 ? code : 1, error: "mock job failed as asked (mock.fail)" };
    }
    return { outputs, exitCode: 0 };
  }
}

function toLines(value: JsonValue | undefined): string[] {
  if (typeof value === "string") return value === "" ? [] : value.replace(/\n$/, "").split("\n");
  if (Array.isArray(value)) return value.map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
  return [];
}

function toNumber(value: JsonValue | undefined): number {
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
