import { readFile } from "node:fs/promises";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { HandlerError } from "../handler.js";

/** Most bytes read from a job's outputs file. */
export const MAX_OUTPUTS_FILE_BYTES = 4 * 1024 * 1024;

/** Reads the JSON object a job wrote to its outputs file; `{}` when the file does not exist. */
export async function readOutputsFile(file: string): Promise<JsonObject> {
  let text: string;
  try {
    const data = await readFile(file);
    if (data.length > MAX_OUTPUTS_FILE_BYTES) {
      throw new HandlerError(`outputs file is larger than ${MAX_OUTPUTS_FILE_BYTES} bytes`);
    }
    text = data.toString("utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw err;
  }
  if (text.trim() === "") return {};
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new HandlerError(`outputs file is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new HandlerError("outputs file must contain a JSON object");
  }
  return value;
}
