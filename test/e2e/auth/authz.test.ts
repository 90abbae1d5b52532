// Authentication and the authorization policy (OPA-WASM, consulted for every RPC) on a real `stackl serve` process
// configured with API tokens.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "../../../gen/grpc/health/v1/health_pb.js";
import { DocumentKind, DocumentSchema, DocumentService } from "../../../gen/stackl/v1/documents_pb.js";
import { freePort } from "../../support/ports.js";
import { eventually, type StacklProcess, spawnStackl } from "../../support/stackl-process.js";

const ADMIN = "a".repeat(40);
const VIEWER = "v".repeat(40);

describe("API tokens and the authorization policy", { timeout: 120_000 }, () => {
  let server: StacklProcess;
  let dir: string;
  let url: string;

  const client = (token?: string) => {
    const auth: Interceptor = (next) => (req) => {
      if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    };
    return createClient(DocumentService, createGrpcTransport({ baseUrl: url, interceptors: [auth] }));
  };
  const env = () => create(DocumentSchema, { meta: { name: "prod" }, spec: { case: "environment", value: {} } });
  const code = async (p: Promise<unknown>) => {
    try {
      await p;
      return "OK";
    } catch (err) {
      return Code[ConnectError.from(err).code];
    }
  };

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "stackl-auth-"));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    server = spawnStackl(["serve"], {
      STACKL_PORT: String(port),
      STACKL_DATA_DIR: dir,
      STACKL_API_TOKENS: `ops:admin:${ADMIN},dash:viewer:${VIEWER}`,
    });
    const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
    await eventually("serving", async () => (await health.check({})).status === 1, {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
  });

  after(async () => {
    server?.kill("SIGTERM");
    await server?.exited;
    await rm(dir, { recursive: true, force: true });
  });

  test("an admin token may write; the author is the token's name", async () => {
    await client(ADMIN).applyDocuments({ documents: [{ document: env() }] });
    const got = await client(VIEWER).getDocument({ kind: DocumentKind.ENVIRONMENT, name: "prod" });
    assert.equal(got.document?.meta?.createdBy, "ops");
  });

  test("a viewer may read but not write; no token may not read; a wrong token is unauthenticated", async () => {
    assert.equal(await code(client(VIEWER).applyDocuments({ documents: [{ document: env() }] })), "PermissionDenied");
    assert.equal(await code(client(VIEWER).listDocuments({})), "OK");
    assert.equal(await code(client().listDocuments({})), "PermissionDenied");
    assert.equal(await code(client("x".repeat(40)).listDocuments({})), "Unauthenticated");
    const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
    assert.equal((await health.check({})).status, 1, "health needs no token");
  });

  test("a bad STACKL_API_TOKENS value stops the process with a message naming it", async () => {
    const p = spawnStackl(["serve"], { STACKL_PORT: "0", STACKL_DATA_DIR: dir, STACKL_API_TOKENS: "ops:root:short" });
    assert.equal(await p.exited, 2);
    assert.match(p.logs(), /STACKL_API_TOKENS: entry 1/);
  });
});
