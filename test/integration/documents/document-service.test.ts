// DocumentService end to end (Connect client → real server → store), on BOTH the embedded PGlite store and a real
// PostgreSQL server: the STACKL tree round trip, atomic batches, optimistic concurrency, references, revisions,
// computed targets, paging and the resumable watch; on PostgreSQL also a database restart during writes.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  ApplyAction,
  type Document,
  DocumentEventType,
  DocumentKind,
  DocumentSchema,
  DocumentService,
  type InfrastructureLayer,
  type StackInfrastructureTemplate,
} from "../../../gen/stackl/v1/documents_pb.js";
import { canonicalDocumentJson } from "../../../src/domain/canonical-json.js";
import { loadStacklTree } from "../../fixtures/stackl-tree.js";
import { type PgServer, startPostgres } from "../../support/postgres.js";
import { type RuntimeServer, startRuntimeServer } from "../../support/runtime-server.js";

function env(name: string, params: Record<string, string> = {}, labels: Record<string, string> = {}): Document {
  return create(DocumentSchema, {
    meta: { name, labels },
    spec: { case: "environment", value: { params, tags: { env: name } } },
  });
}

async function expectCode(p: Promise<unknown>, code: Code): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    const ce = ConnectError.from(err);
    assert.equal(Code[ce.code], Code[code], ce.message);
    return ce;
  }
  assert.fail(`expected ${Code[code]}`);
}

function suite(store: "pglite" | "postgres") {
  describe(`DocumentService on ${store}`, { timeout: 300_000 }, () => {
    let pg: PgServer | undefined;
    let dataDir: string | undefined;
    let server: RuntimeServer;
    let client: Client<typeof DocumentService>;

    before(async () => {
      const vars: Record<string, string> = {};
      if (store === "postgres") {
        pg = await startPostgres();
        vars.STACKL_DATABASE_URL = pg.url;
      } else {
        dataDir = await mkdtemp(path.join(tmpdir(), "stackl-docs-"));
        vars.STACKL_DATA_DIR = dataDir;
      }
      server = await startRuntimeServer(vars);
      client = createClient(DocumentService, createGrpcTransport({ baseUrl: server.url }));
    });

    after(async () => {
      await server?.close();
      await pg?.stop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    test("a STACKL-format document tree applies and reads back equal; re-applying changes nothing", async () => {
      const parsed = loadStacklTree();
      assert.deepEqual(
        parsed.flatMap((p) => p.violations),
        [],
      );
      const docs = parsed.map((p) => p.doc as Document);
      const first = await client.applyDocuments({ documents: docs.map((document) => ({ document })) });
      assert.equal(first.results.length, docs.length);
      assert.ok(first.results.every((r) => r.action === ApplyAction.CREATED && r.revision === 1n));
      for (const doc of docs) {
        const kind = first.results.find((r) => r.name === doc.meta?.name)?.kind ?? DocumentKind.UNSPECIFIED;
        const got = (await client.getDocument({ kind, name: doc.meta?.name ?? "" })).document as Document;
        if (got.spec.case === "stackInfrastructureTemplate") got.spec.value.targets = [];
        if (got.spec.case === "policyTemplate") {
          // Compiled by opa on apply: the server adds the bundle.
          got.spec.value.bundle = new Uint8Array(0);
          got.spec.value.bundleSha256 = "";
          got.spec.value.entrypoints = [];
        }
        assert.equal(canonicalDocumentJson(got), canonicalDocumentJson(doc), `${doc.meta?.name} reads back equal`);
      }
      const again = await client.applyDocuments({ documents: docs.map((document) => ({ document })) });
      assert.ok(again.results.every((r) => r.action === ApplyAction.UNCHANGED && r.revision === 1n));
    });

    test("stack infrastructure templates return targets computed on read from the current layers", async () => {
      const list = await client.listDocuments({ kind: DocumentKind.STACK_INFRASTRUCTURE_TEMPLATE });
      const sit = list.documents[0] as Document;
      const value = sit.spec.value as StackInfrastructureTemplate;
      assert.ok(value.targets.length >= 4);
      const keys = value.targets.map((t) => t.key);
      assert.deepEqual([...keys].sort(), keys, "targets are sorted by key");
      const first = value.targets[0];
      assert.ok(first);
      const zone = (await client.getDocument({ kind: DocumentKind.ZONE, name: first.zone })).document as Document;
      const layer = zone.spec.value as InfrastructureLayer;
      layer.params = { ...(layer.params ?? {}), stackl_probe: "zone-wins" };
      await client.applyDocuments({ documents: [{ document: zone }] });
      const after = (
        await client.getDocument({ kind: DocumentKind.STACK_INFRASTRUCTURE_TEMPLATE, name: sit.meta?.name ?? "" })
      ).document as Document;
      const target = (after.spec.value as StackInfrastructureTemplate).targets.find((t) => t.key === first.key);
      assert.equal(target?.params?.stackl_probe, "zone-wins");
      assert.equal(after.meta?.revision, sit.meta?.revision, "the SIT itself was not rewritten");
    });

    test("an invalid batch writes nothing and names the field", async () => {
      const before = await client.listDocuments({ kind: DocumentKind.ENVIRONMENT });
      const err = await expectCode(
        client.applyDocuments({
          documents: [
            { document: env("fresh_env") },
            {
              document: create(DocumentSchema, {
                meta: { name: "broken" },
                spec: { case: "service", value: { functionalRequirements: ["does_not_exist"] } },
              }),
            },
          ],
        }),
        Code.InvalidArgument,
      );
      assert.match(err.message, /documents\[1\]\.document\.service\.functional_requirements\[0\]/);
      const afterList = await client.listDocuments({ kind: DocumentKind.ENVIRONMENT });
      assert.equal(afterList.documents.length, before.documents.length);
      await expectCode(client.getDocument({ kind: DocumentKind.ENVIRONMENT, name: "fresh_env" }), Code.NotFound);
      const badName = await expectCode(
        client.applyDocuments({ documents: [{ document: env("a.b") }] }),
        Code.InvalidArgument,
      );
      assert.match(badName.message, /documents\[0\]\.document\.meta\.name/);
    });

    test("concurrent writers with the same expected revision: exactly one wins", async () => {
      await client.applyDocuments({ documents: [{ document: env("race") }] });
      const writers = Array.from({ length: 8 }, (_, i) =>
        client.applyDocuments({ documents: [{ document: env("race", { writer: String(i) }), expectedRevision: 1n }] }),
      );
      const results = await Promise.allSettled(writers);
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      assert.equal(won.length, 1);
      assert.ok(lost.every((r) => ConnectError.from(r.reason).code === Code.Aborted));
      const got = await client.getDocument({ kind: DocumentKind.ENVIRONMENT, name: "race" });
      assert.equal(got.document?.meta?.revision, 2n);
    });

    test("deleting a referenced document is refused with the referrers", async () => {
      const err = await expectCode(
        client.deleteDocument({ kind: DocumentKind.ENVIRONMENT, name: "production" }),
        Code.FailedPrecondition,
      );
      assert.match(err.message, /stack_infrastructure_template "eu-platform"/);
      await client.applyDocuments({ documents: [{ document: env("lonely") }] });
      const del = await client.deleteDocument({ kind: DocumentKind.ENVIRONMENT, name: "lonely" });
      assert.equal(del.revision, 2n);
      await expectCode(client.getDocument({ kind: DocumentKind.ENVIRONMENT, name: "lonely" }), Code.NotFound);
    });

    test("revisions: history with who/when and diffs; restore writes an old revision as a new one", async () => {
      await client.applyDocuments({ documents: [{ document: env("hist", { size: "s" }) }] });
      await client.applyDocuments({ documents: [{ document: env("hist", { size: "m", zone: "a" }) }] });
      await client.applyDocuments({ documents: [{ document: env("hist", { size: "l" }) }] });
      const revs = await client.listRevisions({ kind: DocumentKind.ENVIRONMENT, name: "hist" });
      assert.deepEqual(
        revs.revisions.map((r) => r.revision),
        [3n, 2n, 1n],
      );
      assert.equal(revs.revisions[0]?.author, "local");
      const changes = revs.revisions[0]?.changes.map((c) => c.path).sort();
      assert.deepEqual(changes, ["environment.params.size", "environment.params.zone"]);
      const restored = await client.restoreRevision({ kind: DocumentKind.ENVIRONMENT, name: "hist", revision: 1n });
      assert.equal(restored.document?.meta?.revision, 4n);
      const layer = restored.document?.spec.value as InfrastructureLayer;
      assert.deepEqual(layer.params, { size: "s" });
      const latest = await client.listRevisions({ kind: DocumentKind.ENVIRONMENT, name: "hist", pageSize: 1 });
      assert.equal(latest.revisions[0]?.operation, "restore");
      assert.equal(latest.revisions[0]?.restoredFrom, 1n);
      assert.notEqual(latest.nextPageToken, "");
      const old = await client.getDocument({ kind: DocumentKind.ENVIRONMENT, name: "hist", revision: 2n });
      assert.equal(old.document?.spec.case, "environment");
      assert.deepEqual((old.document.spec.value as InfrastructureLayer).params, { size: "m", zone: "a" });
    });

    test("list by kind, name prefix and labels, with paging", async () => {
      await client.applyDocuments({
        documents: ["pg_a", "pg_b", "pg_c", "pg_d", "pg_e"].map((n, i) => ({
          document: env(n, {}, { team: i % 2 === 0 ? "red" : "blue" }),
        })),
      });
      const names: string[] = [];
      let token = "";
      do {
        const page = await client.listDocuments({
          kind: DocumentKind.ENVIRONMENT,
          namePrefix: "pg_",
          pageSize: 2,
          pageToken: token,
        });
        assert.ok(page.documents.length <= 2);
        names.push(...page.documents.map((d) => d.meta?.name ?? ""));
        token = page.nextPageToken;
      } while (token !== "");
      assert.deepEqual(names, ["pg_a", "pg_b", "pg_c", "pg_d", "pg_e"]);
      const red = await client.listDocuments({ kind: DocumentKind.ENVIRONMENT, labelSelector: { team: "red" } });
      assert.deepEqual(
        red.documents.map((d) => d.meta?.name),
        ["pg_a", "pg_c", "pg_e"],
      );
    });

    test("watch delivers every change in order, and resumes after a reconnect from a sequence", async () => {
      const ac = new AbortController();
      const stream = client.watchDocuments({ kinds: [DocumentKind.ENVIRONMENT] }, { signal: ac.signal });
      const it = stream[Symbol.asyncIterator]();
      // The first change also proves the stream is subscribed (a watch starts after the current sequence).
      const seen: { seq: bigint; name: string; type: DocumentEventType }[] = [];
      const firstWrite = (async () => {
        for (let i = 0; i < 20 && seen.length === 0; i++) {
          await client.applyDocuments({ documents: [{ document: env("w0", { i: String(i) }) }] });
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const first = await it.next();
      await firstWrite;
      assert.ok(!first.done);
      seen.push({ seq: first.value.sequence, name: first.value.name, type: first.value.type });
      for (const n of ["w1", "w2", "w3"]) await client.applyDocuments({ documents: [{ document: env(n) }] });
      const want = new Set(["w1", "w2", "w3"]);
      while (want.size > 0) {
        const next = await it.next();
        assert.ok(!next.done);
        seen.push({ seq: next.value.sequence, name: next.value.name, type: next.value.type });
        want.delete(next.value.name);
      }
      ac.abort();
      const seqs = seen.map((s) => s.seq);
      assert.deepEqual(
        [...seqs].sort((a, b) => (a < b ? -1 : 1)),
        seqs,
        "in order",
      );
      const last = seqs.at(-1) as bigint;
      // Changes while disconnected, then resume.
      await client.applyDocuments({ documents: [{ document: env("w4") }] });
      await client.deleteDocument({ kind: DocumentKind.ENVIRONMENT, name: "w4" });
      await client.applyDocuments({ documents: [{ document: env("w5") }] });
      const ac2 = new AbortController();
      const resumed: { name: string; type: DocumentEventType; seq: bigint }[] = [];
      for await (const ev of client.watchDocuments(
        { kinds: [DocumentKind.ENVIRONMENT], afterSequence: last },
        { signal: ac2.signal },
      )) {
        resumed.push({ name: ev.name, type: ev.type, seq: ev.sequence });
        if (resumed.length === 3) break;
      }
      ac2.abort();
      assert.deepEqual(
        resumed.map((r) => [r.name, DocumentEventType[r.type]]),
        [
          ["w4", "APPLIED"],
          ["w4", "DELETED"],
          ["w5", "APPLIED"],
        ],
      );
      assert.equal(resumed[0]?.seq, last + 1n, "no change was skipped");
    });

    if (store === "postgres") {
      test("a PostgreSQL restart during writes loses no acknowledged write; the server recovers on its own", async () => {
        const acked: string[] = [];
        let stop = false;
        let failures = 0;
        const writer = (async () => {
          for (let i = 0; !stop && i < 2000; i++) {
            try {
              await client.applyDocuments({ documents: [{ document: env(`rs_${i}`) }] });
              acked.push(`rs_${i}`);
            } catch (err) {
              failures++;
              assert.ok(
                [Code.Unavailable, Code.DeadlineExceeded, Code.Internal].includes(ConnectError.from(err).code),
                String(err),
              );
              await new Promise((r) => setTimeout(r, 50));
            }
          }
        })();
        while (acked.length < 5) await new Promise((r) => setTimeout(r, 20));
        await pg?.restart();
        const afterRestart = acked.length;
        while (acked.length < afterRestart + 5) await new Promise((r) => setTimeout(r, 20));
        stop = true;
        await writer;
        const stored = new Set<string>();
        let token = "";
        do {
          const page = await client.listDocuments({
            kind: DocumentKind.ENVIRONMENT,
            namePrefix: "rs_",
            pageSize: 500,
            pageToken: token,
          });
          for (const d of page.documents) stored.add(d.meta?.name ?? "");
          token = page.nextPageToken;
        } while (token !== "");
        assert.deepEqual(
          acked.filter((n) => !stored.has(n)),
          [],
          "every acknowledged write is stored",
        );
        assert.ok(acked.length > afterRestart, `writes succeeded after the restart (failures during it: ${failures})`);
      });
    }
  });
}

suite("pglite");
suite("postgres");
