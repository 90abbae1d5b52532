/**
 * Document store benchmark (issue 3): ApplyDocuments documents/s and GetDocument p50/p99 through the public API of a
 * real `stackl serve` process, on the embedded PGlite store and on PostgreSQL, next to a raw `pg` baseline on the
 * same PostgreSQL in the same run (one INSERT of the same JSON per document; a SELECT by primary key).
 *
 *   npx tsx bench/documents.ts [--quick] [--seconds N] [--profile]
 *
 * --quick   shorter phases (a smoke run, about 30 s)
 * --seconds time limit of each measured phase (default 10; every phase is also bounded by a count)
 * --profile run the PostgreSQL server under `node --cpu-prof` too and print its top self-time functions per phase
 *           (that run's figures are then slightly pessimistic)
 *
 * Prints Markdown tables on stdout (progress on stderr). Starts and stops its own PostgreSQL and servers on
 * 127.0.0.1. Asserts nothing.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { ApplyAction, type Document, DocumentService } from "../gen/stackl/v1/documents_pb.js";
import { kindKey, specToJson } from "../src/services/document-codec.js";
import { type BenchPg, pgSettings, startBenchPostgres, startStackl } from "./lib/cluster.js";
import { formatProfile, summarizeProfile } from "./lib/cpuprofile.js";
import { DocumentFactory, fixtureTree, kindOf } from "./lib/doc-fixtures.js";
import { machineLine } from "./lib/machine.js";
import { type StatementDelta, shortSql, snapshotStatements, statementDelta } from "./lib/pgstat.js";
import { CpuMeter, type CpuSources, cpuMs, ownCpuMs, treeCpuMs } from "./lib/proc.js";
import {
  fmtMs,
  fmtRate,
  fmtRatio,
  fmtUs,
  type LatencySummary,
  runConcurrent,
  runSequential,
  summarize,
} from "./lib/stats.js";
import { printTable, progress } from "./lib/table.js";

const args = process.argv.slice(2);
const QUICK = args.includes("--quick");
const secondsArg = args.indexOf("--seconds");
const SECONDS = secondsArg >= 0 ? Number(args[secondsArg + 1]) : QUICK ? 4 : 10;
const PROFILE = args.includes("--profile");
const BATCH_SIZE = 100;
/** Counts bounding every phase (the time limit usually ends it first). */
const MAX_BATCHES = QUICK ? 10 : 60;
const MAX_SINGLES = QUICK ? 300 : 3_000;
const MAX_GETS_SEQ = QUICK ? 1_000 : 10_000;
const MAX_GETS_CONC = QUICK ? 3_000 : 40_000;
const GET_CONCURRENCY = 16;
const WARMUP_BATCHES = 3;

/** One measured phase. */
interface Phase {
  /** Operations per second (documents/s for applies, calls/s for reads). */
  rate: number;
  latency: LatencySummary;
  /** CPU µs per operation (document or call), by process. */
  cpuUsPerOp: Record<string, number>;
  ops: number;
  /** SQL statements per operation (PostgreSQL targets only). */
  statementsPerOp: number;
  statements: StatementDelta[];
  /** Wall clock (ms since epoch) of the phase (profile windows). */
  from: number;
  to: number;
}

interface TargetResult {
  batch: Phase;
  single: Phase;
  getSeq: Phase;
  getConc: Phase;
}

async function measure(
  meter: CpuMeter,
  stats: pg.Client | undefined,
  opsPerRun: number,
  run: () => Promise<{ durations: number[]; elapsedMs: number }>,
): Promise<Phase> {
  const statementsBefore = stats ? await snapshotStatements(stats) : undefined;
  const before = meter.snapshot();
  const from = Date.now();
  const { durations, elapsedMs } = await run();
  const to = Date.now();
  const cpu = CpuMeter.delta(before, meter.snapshot());
  const statements = stats && statementsBefore ? statementDelta(statementsBefore, await snapshotStatements(stats)) : [];
  const ops = durations.length * opsPerRun;
  const cpuUsPerOp: Record<string, number> = {};
  for (const [k, ms] of Object.entries(cpu)) cpuUsPerOp[k] = (ms * 1000) / ops;
  return {
    rate: (ops / elapsedMs) * 1000,
    latency: summarize(durations),
    cpuUsPerOp,
    ops,
    statementsPerOp: stats ? statements.reduce((a, st) => a + st.calls, 0) / ops : Number.NaN,
    statements,
    from,
    to,
  };
}

async function statsClient(pgServer: BenchPg | undefined): Promise<pg.Client | undefined> {
  if (!pgServer) return undefined;
  const c = new pg.Client({ connectionString: pgServer.url });
  c.on("error", () => undefined);
  await c.connect();
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// STACKL through the API

async function benchStackl(
  label: string,
  env: Record<string, string>,
  pgServer?: BenchPg,
  profileDir?: string,
): Promise<TargetResult & { startedAt: number }> {
  progress(`${label}: starting stackl serve${profileDir ? " under --cpu-prof" : ""}`);
  const server = await startStackl(
    "serve",
    env,
    profileDir ? { nodeOptions: `--cpu-prof --cpu-prof-dir=${profileDir}` } : {},
  );
  const stats = await statsClient(pgServer);
  try {
    const client = createClient(DocumentService, createGrpcTransport({ baseUrl: server.url }));
    const sources: CpuSources = { server: () => cpuMs(server.pid), client: ownCpuMs };
    if (pgServer) sources.postgres = () => treeCpuMs(pgServer.pid);
    const meter = new CpuMeter(sources);
    const factory = new DocumentFactory();
    const run = Math.random().toString(36).slice(2, 6); // unique names per run: every apply creates documents

    await client.applyDocuments({ documents: fixtureTree().map((document) => ({ document })) });
    for (let i = 0; i < WARMUP_BATCHES; i++) {
      await client.applyDocuments({
        documents: factory.batch(`${run}w${i}`, BATCH_SIZE).map((document) => ({ document })),
      });
    }

    progress(`${label}: ApplyDocuments, batches of ${BATCH_SIZE}`);
    const batches = Array.from({ length: MAX_BATCHES }, (_, i) =>
      factory.batch(`${run}b${i}`, BATCH_SIZE).map((document) => ({ document })),
    );
    const applied: Document[] = [];
    const batch = await measure(meter, stats, BATCH_SIZE, () =>
      runSequential(MAX_BATCHES, SECONDS, async (i) => {
        const documents = batches[i] as { document: Document }[];
        const res = await client.applyDocuments({ documents });
        if (res.results.length !== documents.length) throw new Error("short ApplyDocuments response");
        if (res.results.some((r) => r.action !== ApplyAction.CREATED)) throw new Error("a document was not created");
        for (const w of documents) applied.push(w.document);
      }),
    );

    progress(`${label}: ApplyDocuments, 1 document per call`);
    const singles = Array.from({ length: MAX_SINGLES }, () => factory.single(`${run}one`));
    const single = await measure(meter, stats, 1, () =>
      runSequential(MAX_SINGLES, SECONDS, async (i) => {
        await client.applyDocuments({ documents: [{ document: singles[i] as Document }] });
      }),
    );

    const keys = applied.map((d) => ({ kind: kindOf(d), name: d.meta?.name ?? "" }));
    const pick = (i: number) => keys[(i * 7919) % keys.length] as { kind: number; name: string };
    for (let i = 0; i < 200; i++) await client.getDocument(pick(i)); // warm-up

    progress(`${label}: GetDocument, sequential`);
    const getSeq = await measure(meter, stats, 1, () =>
      runSequential(MAX_GETS_SEQ, SECONDS, async (i) => {
        const res = await client.getDocument(pick(i));
        if (res.document === undefined) throw new Error("GetDocument returned no document");
      }),
    );
    progress(`${label}: GetDocument, concurrency ${GET_CONCURRENCY}`);
    const getConc = await measure(meter, stats, 1, () =>
      runConcurrent(GET_CONCURRENCY, MAX_GETS_CONC, SECONDS, async (i) => {
        const res = await client.getDocument(pick(i));
        if (res.document === undefined) throw new Error("GetDocument returned no document");
      }),
    );
    return { batch, single, getSeq, getConc, startedAt: server.startedAt };
  } finally {
    progress(`${label}: stopping stackl serve`);
    await stats?.end();
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Raw baseline: node-postgres against the same PostgreSQL, same JSON, a table shaped like `documents`

const COLUMNS = "kind, name, revision, labels, description, spec, created_at, updated_at, created_by, updated_by";

interface RawRow {
  kind: string;
  name: string;
  labels: string;
  description: string;
  spec: string;
}

function rawRow(doc: Document): RawRow {
  return {
    kind: kindKey(kindOf(doc), "kind"),
    name: doc.meta?.name ?? "",
    labels: JSON.stringify(doc.meta?.labels ?? {}),
    description: doc.meta?.description ?? "",
    spec: JSON.stringify(specToJson(doc)),
  };
}

const INSERT = `INSERT INTO raw_docs (${COLUMNS}) VALUES ($1, $2, 1, $3::jsonb, $4, $5::jsonb, $6, $6, 'bench', 'bench')`;

async function insertRaw(c: pg.ClientBase, r: RawRow): Promise<void> {
  await c.query({
    name: "raw-insert",
    text: INSERT,
    values: [r.kind, r.name, r.labels, r.description, r.spec, new Date()],
  });
}

async function benchRaw(pgServer: BenchPg): Promise<TargetResult> {
  const client = new pg.Client({ connectionString: pgServer.url });
  await client.connect();
  const pool = new pg.Pool({ connectionString: pgServer.url, max: GET_CONCURRENCY });
  pool.on("error", () => undefined); // an idle connection closed by the server at shutdown
  client.on("error", () => undefined);
  try {
    // Same columns, keys and indexes as STACKL's `documents` (migrated by the PostgreSQL run above).
    await client.query("DROP TABLE IF EXISTS raw_docs");
    await client.query("CREATE TABLE raw_docs (LIKE documents INCLUDING ALL)");
    const meter = new CpuMeter({ server: () => 0, client: ownCpuMs, postgres: () => treeCpuMs(pgServer.pid) });
    const stats = await statsClient(pgServer);
    const factory = new DocumentFactory();
    for (let i = 0; i < WARMUP_BATCHES; i++) {
      await client.query("BEGIN");
      for (const d of factory.batch(`w${i}`, BATCH_SIZE)) await insertRaw(client, rawRow(d));
      await client.query("COMMIT");
    }

    progress("raw: 100 INSERTs per transaction");
    const batches = Array.from({ length: MAX_BATCHES }, (_, i) => factory.batch(`b${i}`, BATCH_SIZE).map(rawRow));
    const batch = await measure(meter, stats, BATCH_SIZE, () =>
      runSequential(MAX_BATCHES, SECONDS, async (i) => {
        await client.query("BEGIN");
        for (const r of batches[i] as RawRow[]) await insertRaw(client, r);
        await client.query("COMMIT");
      }),
    );

    progress("raw: 1 INSERT per document (autocommit)");
    const singles = Array.from({ length: MAX_SINGLES }, () => rawRow(factory.single("one")));
    const single = await measure(meter, stats, 1, () =>
      runSequential(MAX_SINGLES, SECONDS, (i) => insertRaw(client, singles[i] as RawRow)),
    );

    const keys = batches.flat().map((r) => [r.kind, r.name]);
    const pick = (i: number) => keys[(i * 7919) % keys.length] as string[];
    const SELECT = `SELECT ${COLUMNS} FROM raw_docs WHERE kind = $1 AND name = $2`;
    const select = async (c: pg.ClientBase | pg.Pool, i: number) => {
      const res = await c.query({ name: "raw-select", text: SELECT, values: pick(i) });
      if (res.rows.length !== 1) throw new Error("raw SELECT found no row");
    };
    for (let i = 0; i < 200; i++) await select(client, i);

    progress("raw: SELECT by primary key, sequential");
    const getSeq = await measure(meter, stats, 1, () => runSequential(MAX_GETS_SEQ, SECONDS, (i) => select(client, i)));
    progress(`raw: SELECT by primary key, concurrency ${GET_CONCURRENCY} (pool of ${GET_CONCURRENCY})`);
    await Promise.all(Array.from({ length: GET_CONCURRENCY }, (_, i) => select(pool, i)));
    const getConc = await measure(meter, stats, 1, () =>
      runConcurrent(GET_CONCURRENCY, MAX_GETS_CONC, SECONDS, (i) => select(pool, i)),
    );
    await stats?.end();
    return { batch, single, getSeq, getConc };
  } finally {
    await client.end();
    await pool.end();
  }
}

// ---------------------------------------------------------------------------------------------------------------

function report(lite: TargetResult, post: TargetResult, raw: TargetResult): void {
  type Pick = (r: TargetResult) => number;
  const rate = (label: string, f: Pick, rawLabel: string) => [
    label,
    fmtRate(f(lite)),
    fmtRate(f(post)),
    `${fmtRate(f(raw))} (${rawLabel})`,
    fmtRatio(f(post), f(raw)),
    fmtRatio(f(lite), f(raw)),
  ];
  const lat = (label: string, f: Pick, rawLabel: string) => [
    label,
    fmtMs(f(lite)),
    fmtMs(f(post)),
    `${fmtMs(f(raw))} (${rawLabel})`,
    fmtRatio(f(post), f(raw)),
    fmtRatio(f(lite), f(raw)),
  ];
  printTable(
    "Documents: STACKL (stackl serve, public API over gRPC) vs raw node-postgres",
    ["metric", "PGlite", "PostgreSQL", "raw baseline (PostgreSQL)", "PostgreSQL ÷ raw", "PGlite ÷ raw"],
    [
      rate(`ApplyDocuments, batches of ${BATCH_SIZE}: documents/s`, (r) => r.batch.rate, "100 INSERTs per tx"),
      lat(`ApplyDocuments, batch of ${BATCH_SIZE}: p50`, (r) => r.batch.latency.p50, "tx of 100 INSERTs"),
      lat(`ApplyDocuments, batch of ${BATCH_SIZE}: p99`, (r) => r.batch.latency.p99, "tx of 100 INSERTs"),
      rate("ApplyDocuments, 1 document per call: documents/s", (r) => r.single.rate, "autocommit INSERT"),
      lat("ApplyDocuments, 1 document: p50", (r) => r.single.latency.p50, "autocommit INSERT"),
      lat("ApplyDocuments, 1 document: p99", (r) => r.single.latency.p99, "autocommit INSERT"),
      lat("GetDocument, sequential: p50", (r) => r.getSeq.latency.p50, "SELECT by PK"),
      lat("GetDocument, sequential: p99", (r) => r.getSeq.latency.p99, "SELECT by PK"),
      rate("GetDocument, sequential: calls/s", (r) => r.getSeq.rate, "SELECT by PK"),
      lat(`GetDocument, concurrency ${GET_CONCURRENCY}: p50`, (r) => r.getConc.latency.p50, "pool of 16"),
      lat(`GetDocument, concurrency ${GET_CONCURRENCY}: p99`, (r) => r.getConc.latency.p99, "pool of 16"),
      rate(`GetDocument, concurrency ${GET_CONCURRENCY}: calls/s`, (r) => r.getConc.rate, "pool of 16"),
    ],
  );
  process.stdout.write(
    "\nRatios are STACKL ÷ raw: for documents/s and calls/s below 1 means STACKL is slower; for latencies above 1 " +
      "means STACKL is slower.\n",
  );

  const cpu = (label: string, ph: (r: TargetResult) => Phase) => {
    const l = ph(lite).cpuUsPerOp;
    const p = ph(post).cpuUsPerOp;
    const r = ph(raw).cpuUsPerOp;
    return [
      label,
      fmtUs(l.server ?? Number.NaN),
      fmtUs(p.server ?? Number.NaN),
      fmtUs(p.postgres ?? Number.NaN),
      fmtUs(r.postgres ?? Number.NaN),
      fmtUs(l.client ?? Number.NaN),
      fmtUs(p.client ?? Number.NaN),
      fmtUs(r.client ?? Number.NaN),
    ];
  };
  printTable(
    "CPU per operation (per document for applies, per call for reads)",
    [
      "phase",
      "PGlite: server",
      "PG: server",
      "PG: postgres",
      "raw: postgres",
      "PGlite: bench client",
      "PG: bench client",
      "raw: bench client",
    ],
    [
      cpu(`apply, batches of ${BATCH_SIZE}`, (r) => r.batch),
      cpu("apply, 1 document per call", (r) => r.single),
      cpu("get, sequential", (r) => r.getSeq),
      cpu(`get, concurrency ${GET_CONCURRENCY}`, (r) => r.getConc),
    ],
  );
  const stmt = (label: string, ph: (r: TargetResult) => Phase) => [
    label,
    ph(post).statementsPerOp.toFixed(2),
    ph(raw).statementsPerOp.toFixed(2),
  ];
  printTable(
    "SQL statements per operation on PostgreSQL (pg_stat_statements; per document for applies, per call for reads)",
    ["phase", "STACKL on PostgreSQL", "raw baseline"],
    [
      stmt(`apply, batches of ${BATCH_SIZE}`, (r) => r.batch),
      stmt("apply, 1 document per call", (r) => r.single),
      stmt("get, sequential", (r) => r.getSeq),
      stmt(`get, concurrency ${GET_CONCURRENCY}`, (r) => r.getConc),
    ],
  );
  const perBatch = (st: StatementDelta) => (st.calls / (post.batch.ops / BATCH_SIZE)).toFixed(1);
  printTable(
    `Statements of one ApplyDocuments call of ${BATCH_SIZE} documents on PostgreSQL (mean per call)`,
    ["statement", "per call"],
    post.batch.statements
      .slice(0, 12)
      .map((st) => [`\`${shortSql(st.query, 100).replace(/\|/g, "\\|")}\``, perBatch(st)]),
  );
  const n = (r: TargetResult) =>
    `${r.batch.ops} batch docs, ${r.single.ops} single docs, ${r.getSeq.ops} + ${r.getConc.ops} reads`;
  process.stdout.write(
    `\nOperations measured: PGlite ${n(lite)}; PostgreSQL ${n(post)}; raw ${n(raw)}. ` +
      `Each phase ran for at most ${SECONDS} s.\n`,
  );
}

async function main(): Promise<void> {
  process.stdout.write(`# bench/documents.ts${QUICK ? " --quick" : ""}\n\n${machineLine()}\n`);
  progress("starting PostgreSQL");
  const pgServer = await startBenchPostgres();
  const dataDir = mkdtempSync(path.join(tmpdir(), "stackl-bench-pglite-"));
  try {
    process.stdout.write(`PostgreSQL: ${await pgSettings(pgServer.url)}\n`);
    const lite = await benchStackl("PGlite", { STACKL_DATA_DIR: dataDir });
    const post = await benchStackl("PostgreSQL", { STACKL_DATABASE_URL: pgServer.url }, pgServer);
    const raw = await benchRaw(pgServer);
    report(lite, post, raw);
    if (PROFILE) {
      const profileDir = mkdtempSync(path.join(tmpdir(), "stackl-bench-prof-"));
      try {
        const prof = await benchStackl(
          "PostgreSQL, profiled",
          { STACKL_DATABASE_URL: pgServer.url },
          pgServer,
          profileDir,
        );
        const file = readdirSync(profileDir).find((f) => f.endsWith(".cpuprofile"));
        if (!file) throw new Error(`no profile written in ${profileDir}`);
        process.stdout.write(
          "\n### CPU profile of stackl serve on PostgreSQL (node --cpu-prof), measured windows only\n\n",
        );
        for (const [title, ph] of [
          [
            `ApplyDocuments, batches of ${BATCH_SIZE} (${fmtRate(prof.batch.rate)} documents/s while profiled)`,
            prof.batch,
          ],
          [`GetDocument, sequential (${fmtRate(prof.getSeq.rate)} calls/s while profiled)`, prof.getSeq],
          [
            `GetDocument, concurrency ${GET_CONCURRENCY} (${fmtRate(prof.getConc.rate)} calls/s while profiled)`,
            prof.getConc,
          ],
        ] as const) {
          const window = { fromMs: ph.from - prof.startedAt, toMs: ph.to - prof.startedAt };
          process.stdout.write(`\n${formatProfile(title, summarizeProfile(path.join(profileDir, file), window), 20)}`);
        }
      } finally {
        rmSync(profileDir, { recursive: true, force: true });
      }
    }
  } finally {
    await pgServer.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
