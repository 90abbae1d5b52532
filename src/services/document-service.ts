import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ApplyAction,
  ChangeType,
  type Document,
  DocumentEventType,
  type DocumentKind,
  DocumentSchema,
  type DocumentService,
  type InfrastructureLayer,
  type StackInfrastructureTemplate,
} from "../../gen/stackl/v1/documents_pb.js";
import { referencesOf } from "../domain/document-references.js";
import { computeTargets } from "../domain/infrastructure-targets.js";
import { diffJson } from "../domain/json-diff.js";
import { validateBatch } from "../domain/validate-document.js";
import { StacklError } from "../errors.js";
import { type ChangeNotifier, WakeLatch } from "../store/change-notifier.js";
import {
  DOCUMENT_CHANGES_CHANNEL,
  type DocumentRepo,
  type DocumentWriteInput,
  type RevisionRow,
  type StoredDocument,
} from "../store/document-repo.js";
import {
  diffableRevision,
  documentFromRevision,
  documentFromStored,
  kindFromKey,
  kindKey,
  kindOfDocument,
  specToJson,
} from "./document-codec.js";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.js";
import { principalOf } from "./principal.js";
import { streamSignal } from "./stream-signal.js";

/** Largest batch ApplyDocuments accepts. */
export const MAX_APPLY_BATCH = 1000;
/** Changes read per query while a watcher catches up. */
const WATCH_BATCH = 500;

export interface DocumentServiceDeps {
  repo: DocumentRepo;
  notifier: ChangeNotifier;
  /** Hook run on every valid batch before it is written (e.g. compiling policy templates). */
  prepare?: (docs: Document[], signal: AbortSignal) => Promise<void>;
}

const ACTION = {
  created: ApplyAction.CREATED,
  updated: ApplyAction.UPDATED,
  unchanged: ApplyAction.UNCHANGED,
} as const;

export function createDocumentService(deps: DocumentServiceDeps): Partial<ServiceImpl<typeof DocumentService>> {
  const { repo } = deps;

  async function withTargets(docs: Document[], signal: AbortSignal): Promise<Document[]> {
    const sits = docs.filter((d) => d.spec.case === "stackInfrastructureTemplate");
    if (sits.length === 0) return docs;
    const keys = new Map<string, { kind: string; name: string }>();
    for (const d of sits) {
      for (const t of (d.spec.value as StackInfrastructureTemplate).infrastructureTargets) {
        keys.set(`environment/${t.environment}`, { kind: "environment", name: t.environment });
        keys.set(`location/${t.location}`, { kind: "location", name: t.location });
        keys.set(`zone/${t.zone}`, { kind: "zone", name: t.zone });
      }
    }
    const layers = new Map<string, InfrastructureLayer>();
    for (const stored of await repo.getMany([...keys.values()], signal)) {
      layers.set(`${stored.kind}/${stored.name}`, documentFromStored(stored).spec.value as InfrastructureLayer);
    }
    const lookup = (kind: string) => (name: string) => layers.get(`${kind}/${name}`);
    for (const d of sits) {
      const sit = d.spec.value as StackInfrastructureTemplate;
      sit.targets = computeTargets(sit, {
        environment: lookup("environment"),
        location: lookup("location"),
        zone: lookup("zone"),
      }).targets;
    }
    return docs;
  }

  return {
    async applyDocuments(req, ctx) {
      if (req.documents.length === 0) {
        throw StacklError.invalid([{ field: "documents", message: "at least one document is required" }]);
      }
      if (req.documents.length > MAX_APPLY_BATCH) {
        throw StacklError.invalid([{ field: "documents", message: `at most ${MAX_APPLY_BATCH} documents per batch` }]);
      }
      const docs = req.documents.map((w) => w.document);
      // Paths name the request field: documents[i].document.<kind>.<field>.
      const violations = validateBatch(
        docs.map((d) => d ?? missingDocument()),
        "documents",
      ).map((v) => ({ ...v, field: v.field.replace(/^(documents\[\d+\])\.(?!document\b)/, "$1.document.") }));
      if (violations.length > 0) throw StacklError.invalid(violations);
      const valid = docs as Document[];
      await deps.prepare?.(valid, ctx.signal);
      const writes: DocumentWriteInput[] = req.documents.map((w, i) => {
        const doc = valid[i] as Document;
        const kind = kindOfDocument(doc) as DocumentKind;
        return {
          kind: kindKey(kind, `documents[${i}].document`),
          name: doc.meta?.name ?? "",
          labels: { ...(doc.meta?.labels ?? {}) },
          description: doc.meta?.description ?? "",
          spec: specToJson(doc),
          refs: referencesOf(doc).map((r) => ({ kind: r.kind, name: r.name, field: r.field })),
          expectedRevision: w.expectedRevision === undefined ? undefined : Number(w.expectedRevision),
          path: `documents[${i}].document`,
        };
      });
      const outcomes = await repo.applyBatch(writes, {
        author: principalOf(ctx),
        dryRun: req.dryRun,
        signal: ctx.signal,
      });
      return {
        results: outcomes.map((o) => ({
          kind: kindFromKey(o.kind),
          name: o.name,
          revision: BigInt(o.revision),
          action: ACTION[o.action],
        })),
      };
    },

    async getDocument(req, ctx) {
      const kind = kindKey(req.kind, "kind");
      requireName(req.name);
      let doc: Document | undefined;
      if (req.revision > 0n) {
        const row = await repo.getRevision(kind, req.name, Number(req.revision), ctx.signal);
        if (row === undefined) throw StacklError.notFound(`revision ${req.revision} of ${kind} "${req.name}"`);
        doc = documentFromRevision(row);
        if (doc === undefined) {
          throw StacklError.notFound(`${kind} "${req.name}" at revision ${req.revision} (it was deleted)`);
        }
      } else {
        const stored = await repo.get(kind, req.name, ctx.signal);
        if (stored === undefined) throw StacklError.notFound(`${kind} "${req.name}"`);
        doc = documentFromStored(stored);
      }
      const [withComputed] = await withTargets([doc], ctx.signal);
      return { document: withComputed };
    },

    async listDocuments(req, ctx) {
      const limit = pageSize(req.pageSize);
      const after = decodePageToken(req.pageToken, isKeyset);
      const rows = await repo.list({
        kind: req.kind === 0 ? undefined : kindKey(req.kind, "kind"),
        namePrefix: req.namePrefix,
        labels: req.labelSelector,
        limit: limit + 1,
        after,
        signal: ctx.signal,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        documents: await withTargets(page.map(documentFromStored), ctx.signal),
        nextPageToken: rows.length > limit && last ? encodePageToken({ kind: last.kind, name: last.name }) : "",
      };
    },

    async deleteDocument(req, ctx) {
      const kind = kindKey(req.kind, "kind");
      requireName(req.name);
      const revision = await repo.delete(kind, req.name, {
        author: principalOf(ctx),
        signal: ctx.signal,
        expectedRevision: req.expectedRevision === undefined ? undefined : Number(req.expectedRevision),
      });
      return { revision: BigInt(revision) };
    },

    async *watchDocuments(req, ctx) {
      const stream = streamSignal(ctx);
      try {
        const kinds = req.kinds.map((k, i) => kindKey(k, `kinds[${i}]`));
        const latch = new WakeLatch();
        const unsubscribe = await deps.notifier.subscribe(DOCUMENT_CHANGES_CHANNEL, latch.wake);
        try {
          let last = req.afterSequence > 0n ? Number(req.afterSequence) : await repo.latestSequence(stream.signal);
          for (;;) {
            const rows = await repo.changesAfter(last, { kinds, limit: WATCH_BATCH, signal: stream.signal });
            for (const row of rows) {
              last = row.sequence;
              yield watchEvent(row);
            }
            if (rows.length < WATCH_BATCH) await latch.wait(stream.signal);
          }
        } finally {
          unsubscribe();
        }
      } catch (err) {
        if (!stream.drained()) throw err;
      }
    },

    async listRevisions(req, ctx) {
      const kind = kindKey(req.kind, "kind");
      requireName(req.name);
      const limit = pageSize(req.pageSize);
      const before = decodePageToken(req.pageToken, isRevisionCursor);
      // One extra row: the predecessor of the oldest revision on this page, for its diff.
      const rows = await repo.listRevisions(kind, req.name, {
        limit: limit + 1,
        beforeRevision: before?.before,
        signal: ctx.signal,
      });
      if (rows.length === 0 && before === undefined) throw StacklError.notFound(`${kind} "${req.name}"`);
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        revisions: page.map((row, i) => ({
          revision: BigInt(row.revision),
          operation: row.operation,
          createTime: timestamp(row.createdAt),
          author: row.author,
          document: documentFromRevision(row),
          restoredFrom: BigInt(row.restoredFrom ?? 0),
          changes: revisionChanges(diffableRevision(rows[i + 1]), diffableRevision(row)).map((c) => ({
            path: c.path,
            type: CHANGE[c.type],
            before: c.before === undefined ? undefined : fromJson(ValueSchema, c.before as JsonValue),
            after: c.after === undefined ? undefined : fromJson(ValueSchema, c.after as JsonValue),
          })),
        })),
        nextPageToken: rows.length > limit && last ? encodePageToken({ before: last.revision }) : "",
      };
    },

    async restoreRevision(req, ctx) {
      const kind = kindKey(req.kind, "kind");
      requireName(req.name);
      const row = await repo.getRevision(kind, req.name, Number(req.revision), ctx.signal);
      if (row === undefined) throw StacklError.notFound(`revision ${req.revision} of ${kind} "${req.name}"`);
      const doc = documentFromRevision(row);
      if (doc === undefined) {
        throw StacklError.invalid([
          { field: "revision", message: `revision ${req.revision} is a deletion; pick an earlier one` },
        ]);
      }
      const [outcome] = await repo.applyBatch(
        [
          {
            kind,
            name: req.name,
            labels: row.labels ?? {},
            description: row.description ?? "",
            spec: row.spec ?? {},
            refs: referencesOf(doc).map((r) => ({ kind: r.kind, name: r.name, field: r.field })),
            expectedRevision: req.expectedRevision === undefined ? undefined : Number(req.expectedRevision),
            path: "revision",
          },
        ],
        { author: principalOf(ctx), restoredFrom: row.revision, signal: ctx.signal },
      );
      const stored = (await repo.get(kind, req.name, ctx.signal)) as StoredDocument;
      if (outcome === undefined) throw new Error("restore wrote nothing");
      const [withComputed] = await withTargets([documentFromStored(stored)], ctx.signal);
      return { document: withComputed };
    },
  };
}

/** Field changes between two revisions; a whole document appearing or disappearing is one ADDED/REMOVED change. */
function revisionChanges(before: unknown, after: unknown) {
  if (before === null && after !== null) return [{ path: "", type: "added" as const, after }];
  if (after === null && before !== null) return [{ path: "", type: "removed" as const, before }];
  return diffJson(before, after);
}

const CHANGE = { added: ChangeType.ADDED, removed: ChangeType.REMOVED, changed: ChangeType.CHANGED } as const;

function watchEvent(row: RevisionRow) {
  const document = documentFromRevision(row);
  return {
    sequence: BigInt(row.sequence),
    type: row.operation === "delete" ? DocumentEventType.DELETED : DocumentEventType.APPLIED,
    kind: kindFromKey(row.kind),
    name: row.name,
    revision: BigInt(row.revision),
    document,
  };
}

function timestamp(d: Date) {
  return { seconds: BigInt(Math.floor(d.getTime() / 1000)), nanos: (d.getTime() % 1000) * 1_000_000 };
}

function requireName(name: string): void {
  if (name === "") throw StacklError.invalid([{ field: "name", message: "is required" }]);
}

/** An empty document in place of a missing one: validateBatch reports its missing spec with the field path. */
function missingDocument(): Document {
  return create(DocumentSchema);
}

function isKeyset(v: unknown): v is { kind: string; name: string } {
  return typeof v === "object" && v !== null && typeof (v as { kind?: unknown }).kind === "string";
}

function isRevisionCursor(v: unknown): v is { before: number } {
  return typeof v === "object" && v !== null && typeof (v as { before?: unknown }).before === "number";
}
