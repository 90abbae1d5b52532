-- Up Migration
-- Documents: the current revision of every document, one row per (kind, name).
CREATE TABLE documents (
  kind        text        NOT NULL,
  name        text        NOT NULL,
  revision    bigint      NOT NULL,
  labels      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  description text        NOT NULL DEFAULT '',
  spec        jsonb       NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  created_by  text        NOT NULL,
  updated_by  text        NOT NULL,
  PRIMARY KEY (kind, name)
);

-- Every write (apply, delete, restore) is an immutable revision. `sequence` is a global, gap-free change number
-- (allocated from document_sequence under the document write lock), which WatchDocuments resumes from.
CREATE TABLE document_revisions (
  kind          text        NOT NULL,
  name          text        NOT NULL,
  revision      bigint      NOT NULL,
  sequence      bigint      NOT NULL UNIQUE,
  operation     text        NOT NULL CHECK (operation IN ('apply', 'delete', 'restore')),
  labels        jsonb,
  description   text,
  spec          jsonb,
  created_at    timestamptz NOT NULL,
  author        text        NOT NULL,
  restored_from bigint,
  PRIMARY KEY (kind, name, revision)
);

CREATE TABLE document_sequence (
  id    boolean PRIMARY KEY DEFAULT true CHECK (id),
  value bigint  NOT NULL
);
INSERT INTO document_sequence (id, value) VALUES (true, 0);

-- Reverse index of references between documents, maintained on write; answers "who references X" on delete.
CREATE TABLE document_refs (
  from_kind text NOT NULL,
  from_name text NOT NULL,
  to_kind   text NOT NULL,
  to_name   text NOT NULL,
  field     text NOT NULL,
  PRIMARY KEY (from_kind, from_name, field)
);
CREATE INDEX document_refs_to ON document_refs (to_kind, to_name);
CREATE INDEX documents_labels ON documents USING gin (labels);
