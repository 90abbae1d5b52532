// (c) One port, every protocol: Connect over HTTP/1.1 with plain fetch + JSON, gRPC-Web over HTTP/1.1, Connect and
// gRPC over HTTP/2, plus /metrics and /healthz — and the one error mapping as clients see it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { DocumentKind, DocumentService } from "../../../gen/stackl/v1/documents_pb.js";
import { ErrorInfoSchema } from "../../../gen/stackl/v1/tasks_pb.js";
import { StacklError } from "../../../src/errors.js";
import type { RegisterServices } from "../../../src/server/routes.js";
import { callError, startTestServer, type TestServer } from "../../support/server.js";

/** A test-only implementation of one stackl.v1 method, registered through the register callback. */
const registerTestDocuments: RegisterServices = (router) => {
  router.service(DocumentService, {
    getDocument(req) {
      if (req.name === "invalid") {
        throw StacklError.invalid([
          { field: "name", message: "must not be 'invalid'" },
          { field: "kind", message: "must be a zone" },
        ]);
      }
      if (req.name === "missing") throw StacklError.notFound(`environment "${req.name}"`);
      if (req.name === "boom") throw new Error("db password hunter2 leaked in a stack trace");
      return { document: { meta: { name: req.name, description: `kind ${DocumentKind[req.kind]}` } } };
    },
  });
};

describe("one port for every protocol", () => {
  let srv: TestServer;

  before(async () => {
    srv = await startTestServer({ register: registerTestDocuments });
  });
  after(() => srv.close());

  const postJson = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${srv.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1", ...headers },
      body: JSON.stringify(body),
    });

  it("Connect over HTTP/1.1 (plain fetch + JSON) reaches a unary RPC implementation", async () => {
    const res = await postJson("/stackl.v1.DocumentService/GetDocument", {
      kind: "DOCUMENT_KIND_ENVIRONMENT",
      name: "production",
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      document: { meta: { name: "production", description: "kind ENVIRONMENT" } },
    });
  });

  it("Connect over HTTP/1.1: a method without implementation is HTTP 501 with code unimplemented", async () => {
    const res = await postJson("/stackl.v1.DocumentService/ListDocuments", {});
    assert.equal(res.status, 501);
    const body = (await res.json()) as { code: string; message: string };
    assert.equal(body.code, "unimplemented");
    assert.match(body.message, /issue #3/);
  });

  it("echoes a sane x-request-id and generates one otherwise", async () => {
    const given = await postJson("/stackl.v1.DocumentService/GetDocument", { name: "a" }, { "x-request-id": "req-42" });
    assert.equal(given.headers.get("x-request-id"), "req-42");
    await given.body?.cancel();
    const bad = await postJson("/stackl.v1.DocumentService/GetDocument", { name: "a" }, { "x-request-id": "a b\tc" });
    assert.match(bad.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    await bad.body?.cancel();
  });

  const transports: [string, () => Transport][] = [
    ["gRPC-Web over HTTP/1.1", () => createGrpcWebTransport({ baseUrl: srv.url, httpVersion: "1.1" })],
    ["Connect over HTTP/2 (h2c)", () => createConnectTransport({ baseUrl: srv.url, httpVersion: "2" })],
    ["gRPC over HTTP/2 (h2c)", () => createGrpcTransport({ baseUrl: srv.url })],
    ["gRPC-Web over HTTP/2 (h2c)", () => createGrpcWebTransport({ baseUrl: srv.url, httpVersion: "2" })],
    [
      "Connect GET over HTTP/1.1 (side-effect-free method)",
      () => createConnectTransport({ baseUrl: srv.url, httpVersion: "1.1", useHttpGet: true }),
    ],
  ];
  for (const [label, make] of transports) {
    it(`${label} reaches the implementation and gets the mapped errors`, async () => {
      const client = createClient(DocumentService, make());
      const res = await client.getDocument({ kind: DocumentKind.ZONE, name: "z1" });
      assert.equal(res.document?.meta?.name, "z1");
      assert.equal(res.document?.meta?.description, "kind ZONE");

      // StacklError → INVALID_ARGUMENT with every violation in the message and as typed details.
      const invalid = await callError(client.getDocument({ name: "invalid" }));
      assert.ok(invalid instanceof ConnectError);
      assert.equal(invalid.code, Code.InvalidArgument);
      assert.equal(invalid.rawMessage, "2 invalid fields: name: must not be 'invalid'; kind: must be a zone");
      const infos = invalid.findDetails(ErrorInfoSchema);
      assert.deepEqual(
        infos.map((i) => [i.code, i.field]),
        [
          ["invalid_argument", ""],
          ["invalid_argument", "name"],
          ["invalid_argument", "kind"],
        ],
      );

      const missing = await callError(client.getDocument({ name: "missing" }));
      assert.equal(missing.code, Code.NotFound);
      assert.equal(missing.rawMessage, 'environment "missing" not found');

      // Unknown errors → INTERNAL with a generic message: nothing of the original leaks.
      const boom = await callError(client.getDocument({ name: "boom" }));
      assert.equal(boom.code, Code.Internal);
      assert.doesNotMatch(boom.rawMessage, /hunter2|password/);
      assert.match(boom.rawMessage, /internal error \(request id [0-9a-f-]{36}\)/);

      const unimplemented = await callError(client.listRevisions({ name: "x" }));
      assert.equal(unimplemented.code, Code.Unimplemented);
    });
  }

  it("GET /healthz answers 200 with the readiness JSON; GET /metrics has the RPC series", async () => {
    const health = await fetch(`${srv.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "SERVING", draining: false, components: {} });

    const metrics = await fetch(`${srv.url}/metrics`);
    assert.equal(metrics.status, 200);
    const text = await metrics.text();
    assert.match(text, /stackl_rpc_handled_total\{rpc="stackl\.v1\.DocumentService\/GetDocument",code="ok"\} \d+/);
    assert.match(text, /stackl_rpc_handled_total\{rpc="stackl\.v1\.DocumentService\/GetDocument",code="internal"\}/);
    assert.match(
      text,
      /stackl_rpc_duration_seconds_bucket\{le="0\.005",rpc="stackl\.v1\.DocumentService\/GetDocument"/,
    );
    assert.match(text, /process_cpu_user_seconds_total/);

    const unknown = await fetch(`${srv.url}/nope`);
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
  });
});
