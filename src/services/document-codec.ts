import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Document,
  DocumentKind,
  DocumentSchema,
  FunctionalRequirementSchema,
  InfrastructureLayerSchema,
  PolicyTemplateSchema,
  ServiceSchema,
  StackApplicationTemplateSchema,
  StackInfrastructureTemplateSchema,
} from "../../gen/stackl/v1/documents_pb.js";
import { StacklError } from "../errors.js";
import type { JsonObject, RevisionRow, StoredDocument } from "../store/document-repo.js";

/** The oneof case of `Document.spec` for every kind, and the kind string stored in the database. */
export const KIND_CODEC = {
  [DocumentKind.ENVIRONMENT]: { key: "environment", case: "environment", schema: InfrastructureLayerSchema },
  [DocumentKind.LOCATION]: { key: "location", case: "location", schema: InfrastructureLayerSchema },
  [DocumentKind.ZONE]: { key: "zone", case: "zone", schema: InfrastructureLayerSchema },
  [DocumentKind.FUNCTIONAL_REQUIREMENT]: {
    key: "functional_requirement",
    case: "functionalRequirement",
    schema: FunctionalRequirementSchema,
  },
  [DocumentKind.SERVICE]: { key: "service", case: "service", schema: ServiceSchema },
  [DocumentKind.STACK_APPLICATION_TEMPLATE]: {
    key: "stack_application_template",
    case: "stackApplicationTemplate",
    schema: StackApplicationTemplateSchema,
  },
  [DocumentKind.STACK_INFRASTRUCTURE_TEMPLATE]: {
    key: "stack_infrastructure_template",
    case: "stackInfrastructureTemplate",
    schema: StackInfrastructureTemplateSchema,
  },
  [DocumentKind.POLICY_TEMPLATE]: { key: "policy_template", case: "policyTemplate", schema: PolicyTemplateSchema },
} as const;

export type StoredKind = (typeof KIND_CODEC)[keyof typeof KIND_CODEC]["key"];
type SpecCase = NonNullable<Document["spec"]["case"]>;

const KIND_BY_KEY = new Map<string, DocumentKind>(
  Object.entries(KIND_CODEC).map(([kind, c]) => [c.key, Number(kind) as DocumentKind]),
);
const KIND_BY_CASE = new Map<string, DocumentKind>(
  Object.entries(KIND_CODEC).map(([kind, c]) => [c.case, Number(kind) as DocumentKind]),
);

/** Stored kind string of an enum value; INVALID_ARGUMENT naming `field` when unspecified. */
export function kindKey(kind: DocumentKind, field: string): StoredKind {
  const codec = KIND_CODEC[kind as keyof typeof KIND_CODEC];
  if (codec === undefined) throw StacklError.invalid([{ field, message: "a document kind is required" }]);
  return codec.key;
}

export function kindFromKey(key: string): DocumentKind {
  const kind = KIND_BY_KEY.get(key);
  if (kind === undefined) throw new Error(`unknown stored document kind ${key}`);
  return kind;
}

/** The document kind of a Document's oneof spec, or undefined when no spec is set. */
export function kindOfDocument(doc: Document): DocumentKind | undefined {
  return doc.spec.case === undefined ? undefined : KIND_BY_CASE.get(doc.spec.case);
}

/** The spec as stored (proto JSON of the oneof value, without output-only fields). */
export function specToJson(doc: Document): JsonObject {
  const kind = kindOfDocument(doc);
  if (kind === undefined || doc.spec.value === undefined) throw new Error("document without spec");
  const value = doc.spec.value;
  if (doc.spec.case === "stackInfrastructureTemplate") {
    // Computed targets are never written back into the user's document.
    const clean = create(StackInfrastructureTemplateSchema, {
      infrastructureTargets: doc.spec.value.infrastructureTargets,
    });
    return toJson(StackInfrastructureTemplateSchema, clean, { useProtoFieldName: true }) as JsonObject;
  }
  const codec = KIND_CODEC[kind as keyof typeof KIND_CODEC];
  // biome-ignore lint/suspicious/noExplicitAny: the codec table pairs each case with its schema.
  return toJson(codec.schema as any, value as any, { useProtoFieldName: true }) as JsonObject;
}

/** Builds a Document message from a stored row (current or revision). */
export function documentFromStored(
  stored: Pick<StoredDocument, "kind" | "name" | "labels" | "description" | "spec"> &
    Partial<Pick<StoredDocument, "revision" | "createdAt" | "updatedAt" | "createdBy" | "updatedBy">>,
): Document {
  const kind = kindFromKey(stored.kind);
  const codec = KIND_CODEC[kind as keyof typeof KIND_CODEC];
  // biome-ignore lint/suspicious/noExplicitAny: the codec table pairs each case with its schema.
  const value = fromJson(codec.schema as any, stored.spec as JsonValue, { ignoreUnknownFields: true });
  return create(DocumentSchema, {
    meta: {
      name: stored.name,
      labels: stored.labels,
      description: stored.description,
      revision: BigInt(stored.revision ?? 0),
      createTime: stored.createdAt ? timestampFromDate(stored.createdAt) : undefined,
      updateTime: stored.updatedAt ? timestampFromDate(stored.updatedAt) : undefined,
      createdBy: stored.createdBy ?? "",
      updatedBy: stored.updatedBy ?? "",
    },
    spec: { case: codec.case as SpecCase, value } as Document["spec"],
  });
}

/** The document as it was at a revision (undefined for a deletion). */
export function documentFromRevision(row: RevisionRow): Document | undefined {
  if (row.spec === null) return undefined;
  return documentFromStored({
    kind: row.kind,
    name: row.name,
    labels: row.labels ?? {},
    description: row.description ?? "",
    spec: row.spec,
    revision: row.revision,
    updatedAt: row.createdAt,
    updatedBy: row.author,
  });
}

/** Whole document as JSON for diffs: meta fields users write plus the spec. */
export function diffableRevision(row: RevisionRow | undefined): unknown {
  if (row === undefined || row.spec === null) return null;
  return { description: row.description ?? "", labels: row.labels ?? {}, [row.kind]: row.spec };
}

export function documentToJson(doc: Document): JsonValue {
  return toJson(DocumentSchema, doc);
}
