// (d) message size and recursion limits; (g) deadlines reach the handler's AbortSignal.
import assert from "node:assert/strict";
import { EventEmitter, once } from "node:events";
import { after, before, describe, it } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type HandlerContext } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { DocumentService } from "../../../gen/stackl/v1/documents_pb.js";
import { TaskService } from "../../../gen/stackl/v1/tasks_pb.js";
import type { RegisterServices } from "../../../src/server/routes.js";
import { callError, startTestServer, type TestServer } from "../../support/server.js";
import { grpcJsClient, unary } from "./grpc-js-client.js";

const MIB = 1024 * 1024;
const LIMIT = 4 * MIB;

/** Resolves with what the slow handler saw when its signal aborted. */
interface Aborted {
  reason: unknown;
  afterMs: number;
}

/** A TaskService whose GetTask waits for its signal, then reports on `aborts` ("aborted") and rethrows the reason. */
function slowTasks(aborts: EventEmitter): RegisterServices {
  return (router) => {
    router.service(TaskService, {
      async getTask(_req, ctx: HandlerContext) {
        const started = performance.now();
        await new Promise<void>((resolve) => {
          if (ctx.signal.aborted) resolve();
          ctx.signal.addEventListener("abort", () => resolve(), { once: true });
        });
        aborts.emit("aborted", { reason: ctx.signal.reason, afterMs: performance.now() - started } satisfies Aborted);
        throw ctx.signal.reason;
      },
    });
  };
}

const sizedDocuments: RegisterServices = (router) => {
  router.service(DocumentService, {
    getDocument(req) {
      const size = req.name === "huge-response" ? LIMIT + 1 : 0;
      return { document: { meta: { name: req.name.slice(0, 16), description: "x".repeat(size) } } };
    },
    applyDocuments(req) {
      return { results: req.documents.map(() => ({ name: "ok" })) };
    },
  });
};

function nested(depth: number): JsonObject {
  let value: JsonObject = { leaf: true };
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

describe("message size and recursion limits", () => {
  let srv: TestServer;
  const aborts = new EventEmitter();

  before(async () => {
    srv = await startTestServer({
      register: (router) => {
        sizedDocuments(router);
        slowTasks(aborts)(router);
      },
    });
  });
  after(() => srv.close());

  const protocols = [
    ["gRPC (h2c)", () => createGrpcTransport({ baseUrl: srv.url })],
    ["gRPC-Web (HTTP/1.1)", () => createGrpcWebTransport({ baseUrl: srv.url, httpVersion: "1.1" })],
    ["Connect (HTTP/1.1)", () => createConnectTransport({ baseUrl: srv.url, httpVersion: "1.1" })],
    ["Connect (h2c)", () => createConnectTransport({ baseUrl: srv.url, httpVersion: "2" })],
  ] as const;

  for (const [label, make] of protocols) {
    it(`${label}: a request over 4 MiB is RESOURCE_EXHAUSTED, and the next call on the same client succeeds`, async (t) => {
      const client = createClient(DocumentService, make());
      const started = performance.now();
      const err = await callError(client.getDocument({ name: "x".repeat(LIMIT + 1) }));
      t.diagnostic(`rejected in ${(performance.now() - started).toFixed(1)} ms`);
      assert.ok(err instanceof ConnectError);
      assert.equal(err.code, Code.ResourceExhausted, err.message);
      // Just under the limit passes (a big body through the one-port sniffing, both HTTP versions).
      const big = await client.getDocument({ name: "y".repeat(LIMIT - 1024) });
      assert.equal(big.document?.meta?.name, "y".repeat(16));
      const next = await client.getDocument({ name: "after" });
      assert.equal(next.document?.meta?.name, "after");
    });
  }

  it("a foreign grpc-js client: over 4 MiB is RESOURCE_EXHAUSTED and the connection keeps serving", async () => {
    const client = grpcJsClient(DocumentService, `127.0.0.1:${srv.port}`);
    try {
      await assert.rejects(
        unary(client, DocumentService.method.getDocument, { name: "x".repeat(LIMIT + 1) }),
        (err: ServiceError) => err.code === GrpcStatus.RESOURCE_EXHAUSTED,
      );
      const next = await unary(client, DocumentService.method.getDocument, { name: "after" });
      assert.equal(next.document?.meta?.name, "after");
    } finally {
      client.close();
    }
  });

  it("a response over 4 MiB is refused by the server (RESOURCE_EXHAUSTED), not sent", async () => {
    const client = createClient(DocumentService, createGrpcTransport({ baseUrl: srv.url }));
    const err = await callError(client.getDocument({ name: "huge-response" }));
    assert.equal(err.code, Code.ResourceExhausted);
    assert.equal((await client.getDocument({ name: "after" })).document?.meta?.name, "after");
  });

  it("a message nested deeper than the recursion limit (64) is rejected; shallow ones pass", async () => {
    const write = (params: JsonObject) => ({
      documents: [{ document: { spec: { case: "environment" as const, value: { params } } } }],
    });
    for (const [label, make] of protocols) {
      const client = createClient(DocumentService, make());
      const ok = await client.applyDocuments(write(nested(5)));
      assert.equal(ok.results.length, 1, label);
      // 40 JSON levels are ~80 message levels (Struct, Value, …): over 64, yet under the client's own limit (100).
      const err = await callError(client.applyDocuments(write(nested(40))));
      assert.ok(err instanceof ConnectError, label);
      // JSON: INVALID_ARGUMENT; binary: connect-es reports parse failures as INTERNAL ("parse binary: …").
      assert.ok([Code.InvalidArgument, Code.Internal].includes(err.code), `${label}: ${err.message}`);
      assert.match(err.message, /recursion|depth|nest/i, label);
      assert.equal((await client.getDocument({ name: "after" })).document?.meta?.name, "after", label);
    }
  });

  it("the server enforces a client's deadline: ctx.signal aborts with DEADLINE_EXCEEDED", async (t) => {
    // A raw Connect request carrying a 300 ms deadline from a client that does not give up by itself: only the
    // server's own deadline can end it.
    const seen = once(aborts, "aborted") as Promise<[Aborted]>;
    const res = await fetch(`${srv.url}/stackl.v1.TaskService/GetTask`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1", "connect-timeout-ms": "300" },
      body: JSON.stringify({ id: "t" }),
    });
    const [aborted] = await seen;
    assert.equal(ConnectError.from(aborted.reason).code, Code.DeadlineExceeded);
    t.diagnostic(`handler aborted ${aborted.afterMs.toFixed(0)} ms after it started (deadline 300 ms)`);
    assert.equal(res.status, 504);
    assert.equal(((await res.json()) as { code: string }).code, "deadline_exceeded");
  });

  it("clients that give up at their deadline (gRPC, Connect, grpc-js) abort the handler's ctx.signal", async (t) => {
    const calls: [string, (timeoutMs: number) => Promise<unknown>][] = [
      [
        "gRPC (connect-node)",
        (ms) =>
          createClient(TaskService, createGrpcTransport({ baseUrl: srv.url })).getTask({ id: "t" }, { timeoutMs: ms }),
      ],
      [
        "Connect HTTP/1.1 (connect-node)",
        (ms) =>
          createClient(TaskService, createConnectTransport({ baseUrl: srv.url, httpVersion: "1.1" })).getTask(
            { id: "t" },
            { timeoutMs: ms },
          ),
      ],
      [
        "gRPC (grpc-js)",
        (ms) => {
          const foreign = grpcJsClient(TaskService, `127.0.0.1:${srv.port}`);
          return unary(foreign, TaskService.method.getTask, { id: "t" }, { deadline: Date.now() + ms }).finally(() =>
            foreign.close(),
          );
        },
      ],
    ];
    for (const [label, call] of calls) {
      const seen = once(aborts, "aborted") as Promise<[Aborted]>;
      const err = await call(300).then(
        () => assert.fail(`${label}: the call succeeded`),
        (e: unknown) => e,
      );
      const code = err instanceof ConnectError ? err.code : (err as ServiceError).code;
      assert.equal(code, Code.DeadlineExceeded, label); // grpc-js status numbers equal Connect codes
      // Whichever side notices first — the server's deadline or the client's reset — the handler's signal aborts,
      // and the call is recorded as a deadline or a cancellation (never as a server failure).
      const [aborted] = await seen;
      t.diagnostic(`${label}: handler aborted after ${aborted.afterMs.toFixed(0)} ms`);
    }
    const metrics = await (await fetch(`${srv.url}/metrics`)).text();
    const getTask = metrics
      .split("\n")
      .filter((l) => l.startsWith('stackl_rpc_handled_total{rpc="stackl.v1.TaskService/GetTask"'));
    assert.ok(getTask.length > 0, "GetTask calls were counted");
    for (const line of getTask) assert.match(line, /code="(deadline_exceeded|canceled)"/);
  });
});

describe("maximum deadline", () => {
  let srv: TestServer;
  const aborts = new EventEmitter();

  before(async () => {
    srv = await startTestServer({ env: { STACKL_MAX_DEADLINE: "1s" }, register: slowTasks(aborts) });
  });
  after(() => srv.close());

  it("a unary call without a deadline gets the server's maximum (DEADLINE_EXCEEDED, handler aborted)", async (t) => {
    const client = createClient(TaskService, createConnectTransport({ baseUrl: srv.url, httpVersion: "1.1" }));
    const seen = once(aborts, "aborted") as Promise<[Aborted]>;
    const err = await callError(client.getTask({ id: "t" }));
    assert.equal(err.code, Code.DeadlineExceeded);
    assert.match(err.rawMessage, /server deadline of 1s/);
    const [aborted] = await seen;
    t.diagnostic(`handler aborted after ${aborted.afterMs.toFixed(0)} ms (max deadline 1 s)`);
  });

  it("a client deadline above the maximum is INVALID_ARGUMENT", async () => {
    const client = createClient(TaskService, createGrpcTransport({ baseUrl: srv.url }));
    const err = await callError(client.getTask({ id: "t" }, { timeoutMs: 60_000 }));
    assert.equal(err.code, Code.InvalidArgument);
  });
});
