-- Up Migration

-- Placeholder so the migration machinery has something to apply; real tables arrive in 0002+.
CREATE TABLE stackl_meta (
  key text PRIMARY KEY,
  value text NOT NULL
);

-- Down Migration

DROP TABLE stackl_meta;
