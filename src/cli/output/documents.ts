/**
 * Documents as the client commands print them: tables for lists (with a kind-specific summary), YAML in either the
 * native API shape (proto JSON with proto field names) or the original STACKL shape (`toStacklObject`, re-appliable
 * with `stackl apply -f`), and proto JSON for `-o json`.
 */
import { clone, create, type JsonObject, type JsonValue, toJson } from "@bufbuild/protobuf";
import { stringify } from "yaml";
import {
  type Document,
  DocumentSchema,
  type InfrastructureTarget,
  ListDocumentsResponseSchema,
} from "../../../gen/stackl/v1/documents_pb.js";
import { type DocumentKind, kindInfo, kindOf } from "../../domain/document-kinds.js";
import { toStacklObject } from "../../domain/stackl-format.js";
import { PLAIN, type Style } from "./style.js";
import { type Column, renderTable } from "./table.js";
import { ageOf } from "./time.js";

/** `stackl`: the original `type:`/`category:` shape; `native`: the API's `Document` (`meta:` + spec). */
export type DocumentShape = "stackl" | "native";

export const DOCUMENT_SHAPES: readonly DocumentShape[] = ["stackl", "native"];

/** Canonical proto JSON of a document (lowerCamelCase names, int64 as strings): `-o json`. */
export function documentJson(doc: Document): JsonValue {
  return toJson(DocumentSchema, doc);
}

/** Proto JSON of a list of documents, shaped like ListDocumentsResponse without the page token. */
export function documentListJson(docs: readonly Document[]): JsonValue {
  return toJson(ListDocumentsResponseSchema, create(ListDocumentsResponseSchema, { documents: [...docs] }));
}

export interface NativeObjectOptions {
  /**
   * Keep output-only fields (revision, times, authors, computed SIT targets, bundle digest and entrypoints).
   * @default true
   */
  outputOnly?: boolean;
}

/** The native shape as a plain object with proto field names (`meta.name`, `service.functional_requirements`). */
export function nativeObject(doc: Document, options: NativeObjectOptions = {}): JsonObject {
  const copy = options.outputOnly === false ? withoutOutputOnly(doc) : doc;
  return toJson(DocumentSchema, copy, { useProtoFieldName: true }) as JsonObject;
}

/** A copy of `doc` without output-only fields: what a user may write back. */
export function withoutOutputOnly(doc: Document): Document {
  const copy = clone(DocumentSchema, doc);
  if (copy.meta !== undefined) {
    copy.meta.revision = 0n;
    copy.meta.createTime = undefined;
    copy.meta.updateTime = undefined;
    copy.meta.createdBy = "";
    copy.meta.updatedBy = "";
  }
  switch (copy.spec.case) {
    case "stackInfrastructureTemplate":
      copy.spec.value.targets = [];
      break;
    case "policyTemplate":
      copy.spec.value.bundleSha256 = "";
      copy.spec.value.entrypoints = [];
      break;
    case "environment":
    case "location":
    case "zone":
    case "functionalRequirement":
    case "service":
    case "stackApplicationTemplate":
    case undefined:
      break;
    default: {
      const never: never = copy.spec;
      throw new Error(`unhandled document spec ${JSON.stringify(never)}`);
    }
  }
  return copy;
}

/** The object printed for `shape`. */
export function shapedObject(doc: Document, shape: DocumentShape, options: NativeObjectOptions = {}): JsonObject {
  switch (shape) {
    case "stackl":
      return toStacklObject(options.outputOnly === false ? withoutOutputOnly(doc) : doc);
    case "native":
      return nativeObject(doc, options);
    default: {
      const never: never = shape;
      throw new Error(`unhandled shape ${String(never)}`);
    }
  }
}

/**
 * YAML text of `value`. STACKL-shape files are read back with YAML 1.1 scalars (as PyYAML did), so they are written
 * with YAML 1.1 quoting (`"yes"`, `"on"` stay strings); native files with YAML 1.2. Long lines are never folded.
 */
export function toYaml(value: unknown, shape: DocumentShape): string {
  return stringify(value, { version: shape === "stackl" ? "1.1" : "1.2", lineWidth: 0, minContentWidth: 0 });
}

/** Documents as multi-document YAML (`---` between them). */
export function documentsYaml(docs: readonly Document[], shape: DocumentShape): string {
  return docs.map((doc) => toYaml(shapedObject(doc, shape), shape)).join("---\n");
}

// ---------------------------------------------------------------------------------------------------------------------
// Tables

export interface DocumentTableOptions {
  /** The kind listed; undefined when the list mixes kinds (adds a KIND column and a generic SUMMARY). */
  kind?: DocumentKind;
  /** Milliseconds since the epoch, for UPDATED ages. */
  now: number;
  style?: Style;
}

const LABELS_MAX = 40;
const SUMMARY_MAX = 60;

/** A table of documents: NAME, REVISION, UPDATED, LABELS and kind-specific columns. */
export function documentsTable(docs: readonly Document[], options: DocumentTableOptions): string {
  const columns: Column<Document>[] = [];
  if (options.kind === undefined) columns.push({ header: "KIND", value: (d) => kindOf(d) ?? "?" });
  columns.push(
    { header: "NAME", value: (d) => d.meta?.name ?? "" },
    { header: "REVISION", value: (d) => String(d.meta?.revision ?? 0n), align: "right" },
    { header: "UPDATED", value: (d) => ageOf(d.meta?.updateTime, options.now) },
    { header: "LABELS", value: (d) => labelsText(d.meta?.labels ?? {}), maxWidth: LABELS_MAX },
  );
  if (options.kind === undefined) {
    columns.push({
      header: "SUMMARY",
      value: (d) =>
        summaryColumns(kindOf(d))
          .map((c) => `${c.header.toLowerCase()}: ${c.value(d)}`)
          .join(", "),
      maxWidth: SUMMARY_MAX,
    });
  } else {
    columns.push(...summaryColumns(options.kind));
  }
  return renderTable(docs, columns, options.style ?? PLAIN);
}

/** `a=b,c=d` (sorted), `-` when none. */
export function labelsText(labels: Readonly<Record<string, string>>): string {
  const keys = Object.keys(labels).sort();
  return keys.length === 0 ? "-" : keys.map((k) => `${k}=${labels[k]}`).join(",");
}

function or(text: string, fallback = "-"): string {
  return text === "" ? fallback : text;
}

/** The columns that say the most about one kind of document. */
export function summaryColumns(kind: DocumentKind | undefined): Column<Document>[] {
  switch (kind) {
    case undefined:
      return [];
    case "environment":
    case "location":
    case "zone":
      return [
        { header: "CLOUD PROVIDER", value: (d) => or(layerOf(d)?.cloudProvider ?? "") },
        { header: "AGENT", value: (d) => or(layerOf(d)?.agent ?? "") },
      ];
    case "functional_requirement":
      return [
        {
          header: "INVOCATIONS",
          value: (d) => {
            if (d.spec.case !== "functionalRequirement") return "-";
            const inv = d.spec.value.invocation;
            return or(
              Object.keys(inv)
                .sort()
                .map((p) => `${p}:${inv[p]?.tool ?? "?"}`)
                .join(", "),
            );
          },
          maxWidth: SUMMARY_MAX,
        },
      ];
    case "service":
      return [
        {
          header: "FUNCTIONAL REQUIREMENTS",
          value: (d) => (d.spec.case === "service" ? or(d.spec.value.functionalRequirements.join(", ")) : "-"),
          maxWidth: SUMMARY_MAX,
        },
      ];
    case "stack_application_template":
      return [
        {
          header: "SERVICES",
          value: (d) =>
            d.spec.case === "stackApplicationTemplate"
              ? or(
                  d.spec.value.services
                    .map((s) => (s.name === s.service ? s.name : `${s.name}=${s.service}`))
                    .join(", "),
                )
              : "-",
          maxWidth: SUMMARY_MAX,
        },
        {
          header: "STAGES",
          value: (d) => (d.spec.case === "stackApplicationTemplate" ? String(d.spec.value.stages.length) : "-"),
          align: "right",
        },
      ];
    case "stack_infrastructure_template":
      return [
        {
          header: "TARGETS",
          value: (d) =>
            d.spec.case === "stackInfrastructureTemplate"
              ? String(Math.max(d.spec.value.targets.length, d.spec.value.infrastructureTargets.length))
              : "-",
          align: "right",
        },
      ];
    case "policy_template":
      return [
        {
          header: "INPUTS",
          value: (d) => (d.spec.case === "policyTemplate" ? or(d.spec.value.inputs.join(", ")) : "-"),
          maxWidth: SUMMARY_MAX,
        },
        {
          header: "BUNDLE",
          value: (d) => (d.spec.case === "policyTemplate" ? or(d.spec.value.bundleSha256.slice(0, 12)) : "-"),
        },
      ];
    default: {
      const never: never = kind;
      throw new Error(`unhandled kind ${String(never)}`);
    }
  }
}

function layerOf(doc: Document) {
  switch (doc.spec.case) {
    case "environment":
    case "location":
    case "zone":
      return doc.spec.value;
    default:
      return undefined;
  }
}

/** The computed targets of a SIT: KEY, CLOUD PROVIDER, AGENT, TAGS. */
export function targetsTable(targets: readonly InfrastructureTarget[], style: Style = PLAIN): string {
  return renderTable(
    targets,
    [
      { header: "TARGET", value: (t) => t.key },
      { header: "CLOUD PROVIDER", value: (t) => or(t.cloudProvider) },
      { header: "AGENT", value: (t) => or(t.agent) },
      { header: "TAGS", value: (t) => labelsText(t.tags), maxWidth: SUMMARY_MAX },
    ],
    style,
  );
}

/** `functional_requirement/linux`: how the commands name one document. */
export function documentRef(kind: DocumentKind, name: string): string {
  return `${kindInfo(kind).kind}/${name}`;
}
