/**
 * Canonical JSON (object keys sorted, no whitespace) and document content comparison. Two documents have the same
 * content when their specs, labels and descriptions are equal; revision, timestamps, authors and other output-only
 * fields are ignored. The store uses this to make re-applying an unchanged document a no-op.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { clone, toJson } from "@bufbuild/protobuf";
import type { Document } from "../../gen/stackl/v1/documents_pb.js";
import { DocumentSchema } from "../../gen/stackl/v1/documents_pb.js";

/** `JSON.stringify` with object keys sorted at every level. `undefined` members are dropped, as JSON.stringify does. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value)) ?? "null";
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : sortKeys(item)));
  if (typeof value === "object" && value !== null) {
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") return sortKeys(toJSON.call(value));
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined && typeof v !== "function")
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => [k, sortKeys(v)] as const);
    return Object.fromEntries(entries);
  }
  return value;
}

/**
 * The user-written content of a document as proto JSON with proto field names (snake_case):
 * `{"meta": {"name", "labels", "description"}, "<kind>": {...spec}}`. Output-only fields (revision, times, authors,
 * SIT `targets`, policy template `bundle_sha256`/`entrypoints`) are left out and empty Structs are treated as unset,
 * so diffs of this value have paths like `service.params.region`.
 */
export function documentContent(doc: Document): JsonObject {
  const copy = clone(DocumentSchema, doc);
  if (copy.meta !== undefined) {
    copy.meta.revision = 0n;
    copy.meta.createTime = undefined;
    copy.meta.updateTime = undefined;
    copy.meta.createdBy = "";
    copy.meta.updatedBy = "";
  }
  const spec = copy.spec;
  switch (spec.case) {
    case undefined:
      break;
    case "environment":
    case "location":
    case "zone":
      spec.value.params = nonEmpty(spec.value.params);
      spec.value.outputs = nonEmpty(spec.value.outputs);
      break;
    case "functionalRequirement":
      spec.value.params = nonEmpty(spec.value.params);
      for (const invocation of Object.values(spec.value.invocation)) invocation.mock = nonEmpty(invocation.mock);
      break;
    case "service":
      spec.value.params = nonEmpty(spec.value.params);
      break;
    case "stackApplicationTemplate":
      break;
    case "stackInfrastructureTemplate":
      spec.value.targets = [];
      break;
    case "policyTemplate":
      spec.value.bundleSha256 = "";
      spec.value.entrypoints = [];
      break;
    default: {
      const never: never = spec;
      throw new Error(`unhandled document spec ${JSON.stringify(never)}`);
    }
  }
  return toJson(DocumentSchema, copy, { useProtoFieldName: true }) as JsonObject;
}

function nonEmpty(struct: JsonObject | undefined): JsonObject | undefined {
  return struct === undefined || Object.keys(struct).length === 0 ? undefined : struct;
}

/** Canonical JSON of `documentContent(doc)`. */
export function canonicalDocumentJson(doc: Document): string {
  return canonicalJson(documentContent(doc));
}

/** True when `a` and `b` have the same kind, name, labels, description and spec. */
export function sameContent(a: Document, b: Document): boolean {
  return canonicalDocumentJson(a) === canonicalDocumentJson(b);
}
