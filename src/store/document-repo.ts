import type { JsonObject } from "@bufbuild/protobuf";
import { ErrorCode, type FieldViolation, StacklError } from "../errors.js";
import type { Db, Queryable } from "./db.js";

/** Channel notified (payload: latest sequence) after every committed document change. */
export const DOCUMENT_CHANGES_CHANNEL = "stackl_documents";
/** Advisory lock serialising document writes, so that change sequences commit in order and stay gap-free. */
const DOCUMENT_WRITE_LOCK = 720_100;

export type { JsonObject };

export interface StoredDocument {
  kind: string;
  name: string;
  revision: number;
  labels: Record<string, string>;
  description: string;
  spec: JsonObject;
  createdAt: Date;
  updatedAt: Date;
  createdBy: string;
  updatedBy: string;
}

export interface DocumentReference {
  kind: string;
  name: string;
  /** Field path inside the referring document, e.g. `service.functional_requirements[0]`. */
  field: string;
}

export interface DocumentWriteInput {
  kind: string;
  name: string;
  labels: Record<string, string>;
  description: string;
  spec: JsonObject;
  refs: DocumentReference[];
  /** When set, the stored revision must equal it (0 = must not exist). */
  expectedRevision?: number | undefined;
  /** Field path of this write in the request, e.g. `documents[3]`, used in errors. */
  path: string;
}

export type ApplyAction = "created" | "updated" | "unchanged";

export interface ApplyOutcome {
  kind: string;
  name: string;
  revision: number;
  action: ApplyAction;
}

export interface WriteOptions {
  author: string;
  signal?: AbortSignal | undefined;
  /** Validate and compute outcomes, then roll back. */
  dryRun?: boolean;
  /** Marks the revisions as restores of this revision. */
  restoredFrom?: number;
}

export interface RevisionRow {
  kind: string;
  name: string;
  revision: number;
  sequence: number;
  operation: "apply" | "delete" | "restore";
  labels: Record<string, string> | null;
  description: string | null;
  spec: JsonObject | null;
  createdAt: Date;
  author: string;
  restoredFrom: number | null;
}

export interface ListDocumentsQuery {
  kind?: string | undefined;
  namePrefix?: string | undefined;
  labels?: Record<string, string> | undefined;
  limit: number;
  /** Exclusive lower bound (kind, name) for keyset paging. */
  after?: { kind: string; name: string } | undefined;
  signal?: AbortSignal | undefined;
}

class DryRunRollback extends Error {
  constructor(readonly outcomes: ApplyOutcome[]) {
    super("dry run");
  }
}

const DOC_COLUMNS = "kind, name, revision, labels, description, spec, created_at, updated_at, created_by, updated_by";
const REV_COLUMNS =
  "kind, name, revision, sequence, operation, labels, description, spec, created_at, author, restored_from";

/** All SQL for documents, revisions and references. */
export class DocumentRepo {
  constructor(private readonly db: Db) {}

  /** Writes a batch atomically: every reference and expected revision is checked inside one transaction. */
  async applyBatch(writes: DocumentWriteInput[], opts: WriteOptions): Promise<ApplyOutcome[]> {
    try {
      return await this.db.tx(
        async (q) => {
          const outcomes = await this.applyInTx(q, writes, opts);
          if (opts.dryRun) throw new DryRunRollback(outcomes);
          return outcomes;
        },
        { signal: opts.signal },
      );
    } catch (err) {
      if (err instanceof DryRunRollback) return err.outcomes;
      throw err;
    }
  }

  private async applyInTx(q: Queryable, writes: DocumentWriteInput[], opts: WriteOptions): Promise<ApplyOutcome[]> {
    await q.query("SELECT pg_advisory_xact_lock($1)", [DOCUMENT_WRITE_LOCK]);
    const kinds = writes.map((w) => w.kind);
    const names = writes.map((w) => w.name);
    const current = await q.query<DocRow & { same: boolean; w_idx: number }>(
      `SELECT d.kind, d.name, d.revision, d.labels, d.description, d.spec, d.created_at, d.updated_at,
              d.created_by, d.updated_by, w.idx AS w_idx,
              (d.spec = w.spec::jsonb AND d.labels = w.labels::jsonb AND d.description = w.description) AS same
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
              WITH ORDINALITY AS w(kind, name, spec, labels, description, idx)
         JOIN documents d ON d.kind = w.kind AND d.name = w.name`,
      [
        kinds,
        names,
        writes.map((w) => JSON.stringify(w.spec)),
        writes.map((w) => JSON.stringify(w.labels)),
        writes.map((w) => w.description),
      ],
    );
    const byIndex = new Map<number, DocRow & { same: boolean }>();
    for (const row of current.rows) byIndex.set(Number(row.w_idx) - 1, row);

    // Optimistic concurrency.
    const conflicts: FieldViolation[] = [];
    writes.forEach((w, i) => {
      if (w.expectedRevision === undefined) return;
      const stored = byIndex.get(i)?.revision ?? 0;
      if (Number(stored) !== w.expectedRevision) {
        conflicts.push({
          field: `${w.path.replace(/\.document$/, "")}.expected_revision`,
          message: `expected revision ${w.expectedRevision} of ${w.kind} ${w.name}, but the stored revision is ${stored}`,
        });
      }
    });
    if (conflicts.length > 0) {
      throw new StacklError(ErrorCode.Conflict, conflicts.map((c) => `${c.field}: ${c.message}`).join("; "), {
        violations: conflicts,
      });
    }

    // References: satisfied by the batch itself or by stored documents.
    const inBatch = new Set(writes.map((w) => `${w.kind}/${w.name}`));
    const wanted = new Map<string, DocumentReference>();
    for (const w of writes)
      for (const r of w.refs) if (!inBatch.has(`${r.kind}/${r.name}`)) wanted.set(`${r.kind}/${r.name}`, r);
    if (wanted.size > 0) {
      const refs = [...wanted.values()];
      const found = await q.query<{ kind: string; name: string }>(
        `SELECT d.kind, d.name FROM documents d
          JOIN unnest($1::text[], $2::text[]) AS r(kind, name) ON d.kind = r.kind AND d.name = r.name`,
        [refs.map((r) => r.kind), refs.map((r) => r.name)],
      );
      const exists = new Set(found.rows.map((r) => `${r.kind}/${r.name}`));
      const missing: FieldViolation[] = [];
      for (const w of writes) {
        for (const r of w.refs) {
          const key = `${r.kind}/${r.name}`;
          if (!inBatch.has(key) && !exists.has(key)) {
            missing.push({
              field: `${w.path}.${r.field}`,
              message: `references ${r.kind} "${r.name}", which does not exist`,
            });
          }
        }
      }
      if (missing.length > 0) throw StacklError.invalid(missing);
    }

    const changed = writes
      .map((w, i) => ({ w, row: byIndex.get(i) }))
      .filter(({ row }) => opts.restoredFrom !== undefined || row === undefined || !row.same);
    const outcomes: ApplyOutcome[] = writes.map((w, i) => {
      const row = byIndex.get(i);
      return { kind: w.kind, name: w.name, revision: Number(row?.revision ?? 0), action: "unchanged" };
    });
    if (changed.length === 0) return outcomes;

    // Revisions continue after deletions: the next revision follows the highest recorded one.
    const last = await q.query<{ kind: string; name: string; revision: number }>(
      `SELECT r.kind, r.name, max(r.revision) AS revision FROM document_revisions r
         JOIN unnest($1::text[], $2::text[]) AS w(kind, name) ON r.kind = w.kind AND r.name = w.name
        GROUP BY r.kind, r.name`,
      [changed.map((c) => c.w.kind), changed.map((c) => c.w.name)],
    );
    const lastRevision = new Map(last.rows.map((r) => [`${r.kind}/${r.name}`, Number(r.revision)]));
    const firstSeq = await allocateSequences(q, changed.length);
    const now = new Date();
    for (const [j, { w, row }] of changed.entries()) {
      const revision = (lastRevision.get(`${w.kind}/${w.name}`) ?? 0) + 1;
      const sequence = firstSeq + j;
      await q.query(
        `INSERT INTO documents (${DOC_COLUMNS})
         VALUES ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7, $7, $8, $8)
         ON CONFLICT (kind, name) DO UPDATE SET revision = EXCLUDED.revision, labels = EXCLUDED.labels,
           description = EXCLUDED.description, spec = EXCLUDED.spec, updated_at = EXCLUDED.updated_at,
           updated_by = EXCLUDED.updated_by`,
        [w.kind, w.name, revision, JSON.stringify(w.labels), w.description, JSON.stringify(w.spec), now, opts.author],
      );
      await q.query(
        `INSERT INTO document_revisions (${REV_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::jsonb, $9, $10, $11)`,
        [
          w.kind,
          w.name,
          revision,
          sequence,
          opts.restoredFrom === undefined ? "apply" : "restore",
          JSON.stringify(w.labels),
          w.description,
          JSON.stringify(w.spec),
          now,
          opts.author,
          opts.restoredFrom ?? null,
        ],
      );
      await q.query("DELETE FROM document_refs WHERE from_kind = $1 AND from_name = $2", [w.kind, w.name]);
      if (w.refs.length > 0) {
        await q.query(
          `INSERT INTO document_refs (from_kind, from_name, to_kind, to_name, field)
           SELECT $1, $2, r.kind, r.name, r.field FROM unnest($3::text[], $4::text[], $5::text[]) AS r(kind, name, field)
           ON CONFLICT DO NOTHING`,
          [w.kind, w.name, w.refs.map((r) => r.kind), w.refs.map((r) => r.name), w.refs.map((r) => r.field)],
        );
      }
      const index = writes.indexOf(w);
      outcomes[index] = { kind: w.kind, name: w.name, revision, action: row === undefined ? "created" : "updated" };
    }
    await q.query("SELECT pg_notify($1, $2)", [DOCUMENT_CHANGES_CHANNEL, String(firstSeq + changed.length - 1)]);
    return outcomes;
  }

  /** Deletes a document unless others reference it; records a `delete` revision. */
  async delete(
    kind: string,
    name: string,
    opts: WriteOptions & { expectedRevision?: number | undefined },
  ): Promise<number> {
    return this.db.tx(
      async (q) => {
        await q.query("SELECT pg_advisory_xact_lock($1)", [DOCUMENT_WRITE_LOCK]);
        const cur = await q.query<{ revision: number }>(
          "SELECT revision FROM documents WHERE kind = $1 AND name = $2",
          [kind, name],
        );
        const row = cur.rows[0];
        if (row === undefined) throw StacklError.notFound(`${kind} "${name}"`);
        if (opts.expectedRevision !== undefined && Number(row.revision) !== opts.expectedRevision) {
          throw new StacklError(
            ErrorCode.Conflict,
            `expected revision ${opts.expectedRevision} of ${kind} ${name}, but the stored revision is ${row.revision}`,
          );
        }
        const referrers = await q.query<{ from_kind: string; from_name: string; field: string }>(
          `SELECT from_kind, from_name, field FROM document_refs
            WHERE to_kind = $1 AND to_name = $2 AND NOT (from_kind = $1 AND from_name = $2)
            ORDER BY from_kind, from_name, field`,
          [kind, name],
        );
        if (referrers.rows.length > 0) {
          const list = referrers.rows.map((r) => `${r.from_kind} "${r.from_name}" (${r.field})`);
          throw new StacklError(
            ErrorCode.FailedPrecondition,
            `${kind} "${name}" is referenced by ${list.join(", ")}; delete or change those first`,
            {
              details: {
                referrers: referrers.rows.map((r) => ({ kind: r.from_kind, name: r.from_name, field: r.field })),
              },
            },
          );
        }
        const revision = Number(row.revision) + 1;
        const seq = await allocateSequences(q, 1);
        await q.query(
          `INSERT INTO document_revisions (${REV_COLUMNS})
           VALUES ($1, $2, $3, $4, 'delete', NULL, NULL, NULL, $5, $6, NULL)`,
          [kind, name, revision, seq, new Date(), opts.author],
        );
        await q.query("DELETE FROM document_refs WHERE from_kind = $1 AND from_name = $2", [kind, name]);
        await q.query("DELETE FROM documents WHERE kind = $1 AND name = $2", [kind, name]);
        await q.query("SELECT pg_notify($1, $2)", [DOCUMENT_CHANGES_CHANNEL, String(seq)]);
        return revision;
      },
      { signal: opts.signal },
    );
  }

  async get(kind: string, name: string, signal?: AbortSignal): Promise<StoredDocument | undefined> {
    const res = await this.db.query<DocRow>(
      `SELECT ${DOC_COLUMNS} FROM documents WHERE kind = $1 AND name = $2`,
      [kind, name],
      {
        signal,
      },
    );
    const row = res.rows[0];
    return row === undefined ? undefined : toStored(row);
  }

  /** Current documents of several (kind, name) pairs in one query. */
  async getMany(keys: Array<{ kind: string; name: string }>, signal?: AbortSignal): Promise<StoredDocument[]> {
    if (keys.length === 0) return [];
    const res = await this.db.query<DocRow>(
      `SELECT ${DOC_COLUMNS.split(", ")
        .map((c) => `d.${c}`)
        .join(", ")} FROM documents d
        JOIN unnest($1::text[], $2::text[]) AS k(kind, name) ON d.kind = k.kind AND d.name = k.name`,
      [keys.map((k) => k.kind), keys.map((k) => k.name)],
      { signal },
    );
    return res.rows.map(toStored);
  }

  async list(query: ListDocumentsQuery): Promise<StoredDocument[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.kind !== undefined) {
      params.push(query.kind);
      where.push(`kind = $${params.length}`);
    }
    if (query.namePrefix) {
      params.push(`${query.namePrefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
      where.push(`name LIKE $${params.length}`);
    }
    if (query.labels !== undefined && Object.keys(query.labels).length > 0) {
      params.push(JSON.stringify(query.labels));
      where.push(`labels @> $${params.length}::jsonb`);
    }
    if (query.after !== undefined) {
      params.push(query.after.kind, query.after.name);
      where.push(`(kind, name) > ($${params.length - 1}, $${params.length})`);
    }
    params.push(query.limit);
    const res = await this.db.query<DocRow>(
      `SELECT ${DOC_COLUMNS} FROM documents ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
        ORDER BY kind, name LIMIT $${params.length}`,
      params,
      { signal: query.signal },
    );
    return res.rows.map(toStored);
  }

  async getRevision(
    kind: string,
    name: string,
    revision: number,
    signal?: AbortSignal,
  ): Promise<RevisionRow | undefined> {
    const res = await this.db.query<RevRow>(
      `SELECT ${REV_COLUMNS} FROM document_revisions WHERE kind = $1 AND name = $2 AND revision = $3`,
      [kind, name, revision],
      { signal },
    );
    const row = res.rows[0];
    return row === undefined ? undefined : toRevision(row);
  }

  /** Revisions newest first, with `beforeRevision` as an exclusive upper bound for paging. */
  async listRevisions(
    kind: string,
    name: string,
    opts: { limit: number; beforeRevision?: number | undefined; signal?: AbortSignal | undefined },
  ): Promise<RevisionRow[]> {
    const res = await this.db.query<RevRow>(
      `SELECT ${REV_COLUMNS} FROM document_revisions
        WHERE kind = $1 AND name = $2 AND ($3::bigint IS NULL OR revision < $3::bigint)
        ORDER BY revision DESC LIMIT $4`,
      [kind, name, opts.beforeRevision ?? null, opts.limit],
      { signal: opts.signal },
    );
    return res.rows.map(toRevision);
  }

  /** Changes with sequence > after, in order, optionally filtered by kinds. */
  async changesAfter(
    after: number,
    opts: { kinds?: string[] | undefined; limit: number; signal?: AbortSignal | undefined },
  ): Promise<RevisionRow[]> {
    const kinds = opts.kinds !== undefined && opts.kinds.length > 0 ? opts.kinds : null;
    const res = await this.db.query<RevRow>(
      `SELECT ${REV_COLUMNS} FROM document_revisions
        WHERE sequence > $1 AND ($2::text[] IS NULL OR kind = ANY($2::text[]))
        ORDER BY sequence LIMIT $3`,
      [after, kinds, opts.limit],
      { signal: opts.signal },
    );
    return res.rows.map(toRevision);
  }

  /** The latest committed change sequence (0 when none). */
  async latestSequence(signal?: AbortSignal): Promise<number> {
    const res = await this.db.query<{ value: number }>("SELECT value FROM document_sequence", [], { signal });
    return Number(res.rows[0]?.value ?? 0);
  }
}

async function allocateSequences(q: Queryable, count: number): Promise<number> {
  const res = await q.query<{ value: number }>("UPDATE document_sequence SET value = value + $1 RETURNING value", [
    count,
  ]);
  const last = Number(res.rows[0]?.value);
  return last - count + 1;
}

interface DocRow {
  kind: string;
  name: string;
  revision: number;
  labels: Record<string, string>;
  description: string;
  spec: JsonObject;
  created_at: Date;
  updated_at: Date;
  created_by: string;
  updated_by: string;
}

interface RevRow {
  kind: string;
  name: string;
  revision: number;
  sequence: number;
  operation: "apply" | "delete" | "restore";
  labels: Record<string, string> | null;
  description: string | null;
  spec: JsonObject | null;
  created_at: Date;
  author: string;
  restored_from: number | null;
}

function toStored(row: DocRow): StoredDocument {
  return {
    kind: row.kind,
    name: row.name,
    revision: Number(row.revision),
    labels: row.labels ?? {},
    description: row.description,
    spec: row.spec,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    createdBy: row.created_by,
    updatedBy: row.updated_by,
  };
}

function toRevision(row: RevRow): RevisionRow {
  return {
    kind: row.kind,
    name: row.name,
    revision: Number(row.revision),
    sequence: Number(row.sequence),
    operation: row.operation,
    labels: row.labels,
    description: row.description,
    spec: row.spec,
    createdAt: row.created_at,
    author: row.author,
    restoredFrom: row.restored_from === null ? null : Number(row.restored_from),
  };
}
