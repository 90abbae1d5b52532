// The interceptor chain on an in-memory router transport (no network): error mapping, logging keys, metrics.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { DocumentService } from "../../../gen/stackl/v1/documents_pb.js";
import { ErrorInfoSchema, TaskService } from "../../../gen/stackl/v1/tasks_pb.js";
import { ErrorCode, StacklError } from "../../../src/errors.js";
import { createLogger } from "../../../src/observability/logger.js";
import { createMetricsRegistry } from "../../../src/observability/metrics.js";
import { requestLoggerKey } from "../../../src/server/context-keys.js";
import { connectCodeOf, errorInterceptor } from "../../../src/server/error-interceptor.js";
import { loggingInterceptor } from "../../../src/server/logging-interceptor.js";
import { metricsInterceptor } from "../../../src/server/metrics-interceptor.js";
import { callError } from "../../support/server.js";

function capture(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split("\n")) if (l.trim() !== "") lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, stream };
}

function setup() {
  const log = capture();
  const logger = createLogger({ level: "debug", destination: log.stream });
  const registry = createMetricsRegistry({ defaultMetrics: false });
  const transport = createRouterTransport(
    (router) => {
      router.service(DocumentService, {
        getDocument(req, ctx) {
          ctx.values.get(requestLoggerKey).info({ document: req.name }, "handler log line");
          switch (req.name) {
            case "conflict":
              throw new StacklError(ErrorCode.Conflict, "revision 3 expected, found 4", { details: { found: 4n } });
            case "stale":
              throw new StacklError(ErrorCode.StaleEpoch, "epoch 2 is stale");
            case "internal":
              throw new StacklError(ErrorCode.Internal, "pg: relation secret_table does not exist");
            case "typeerror":
              throw new TypeError("Cannot read properties of undefined (reading 'token')");
            default:
              return { document: { meta: { name: req.name } } };
          }
        },
        async *watchDocuments() {
          yield { sequence: 1n };
          throw StacklError.notFound("document stream");
        },
      });
      router.service(TaskService, {});
    },
    {
      router: {
        interceptors: [loggingInterceptor(logger), metricsInterceptor(registry), errorInterceptor(logger)],
      },
    },
  );
  return { log, registry, docs: createClient(DocumentService, transport) };
}

describe("error interceptor", () => {
  it("maps every StacklError code (exhaustively) to a Connect code", () => {
    const expected: Record<ErrorCode, Code> = {
      invalid_argument: Code.InvalidArgument,
      not_found: Code.NotFound,
      already_exists: Code.AlreadyExists,
      conflict: Code.Aborted,
      failed_precondition: Code.FailedPrecondition,
      permission_denied: Code.PermissionDenied,
      unauthenticated: Code.Unauthenticated,
      resource_exhausted: Code.ResourceExhausted,
      unavailable: Code.Unavailable,
      deadline_exceeded: Code.DeadlineExceeded,
      cancelled: Code.Canceled,
      unimplemented: Code.Unimplemented,
      stale_epoch: Code.Aborted,
      policy_rejected: Code.FailedPrecondition,
      internal: Code.Internal,
    };
    for (const code of Object.values(ErrorCode)) assert.equal(connectCodeOf(code), expected[code], code);
  });

  it("maps StacklErrors with details, hides internal ones, and maps errors thrown mid-stream", async () => {
    const { docs, log } = setup();
    const conflict = await callError(docs.getDocument({ name: "conflict" }));
    assert.equal(conflict.code, Code.Aborted);
    assert.equal(conflict.rawMessage, "revision 3 expected, found 4");
    const [info] = conflict.findDetails(ErrorInfoSchema);
    assert.equal(info?.code, "conflict");
    assert.equal(info?.retryable, true);
    assert.equal((await callError(docs.getDocument({ name: "stale" }))).code, Code.Aborted);

    for (const name of ["internal", "typeerror"]) {
      const err = await callError(docs.getDocument({ name }));
      assert.equal(err.code, Code.Internal);
      assert.doesNotMatch(err.rawMessage, /secret_table|token/);
      assert.match(err.rawMessage, /^internal error \(request id [0-9a-f-]{36}\)/);
    }
    // The details are in the log, with the request id the client saw.
    const logged = log.lines.filter((l) => l.msg === "internal error" || l.msg === "unexpected error");
    assert.equal(logged.length, 2);
    assert.match(JSON.stringify(logged), /secret_table/);

    const stream = docs.watchDocuments({});
    const received: bigint[] = [];
    const err = await callError(
      (async () => {
        for await (const m of stream) received.push(m.sequence);
      })(),
    );
    assert.deepEqual(received, [1n]);
    assert.equal(err.code, Code.NotFound);
  });
});

describe("logging and metrics interceptors", () => {
  it("log one line per call with rpc, request_id, code and duration_ms; handlers log with rpc and request_id", async () => {
    const { docs, log } = setup();
    await docs.getDocument({ name: "a" });
    await callError(docs.getDocument({ name: "conflict" }));
    const done = log.lines.filter((l) => l.msg === "rpc done");
    assert.equal(done.length, 2);
    for (const l of done) {
      assert.equal(l.rpc, "stackl.v1.DocumentService/GetDocument");
      assert.equal(typeof l.request_id, "string");
      assert.equal(typeof l.duration_ms, "number");
    }
    assert.deepEqual(
      done.map((l) => l.code),
      ["ok", "aborted"],
    );
    const handler = log.lines.find((l) => l.msg === "handler log line");
    assert.equal(handler?.rpc, "stackl.v1.DocumentService/GetDocument");
    assert.equal(handler?.request_id, done[0]?.request_id);
  });

  it("count and time calls per rpc and code", async () => {
    const { docs, registry } = setup();
    await docs.getDocument({ name: "a" });
    await docs.getDocument({ name: "b" });
    await callError(docs.getDocument({ name: "typeerror" }));
    const handled = await registry.getSingleMetric("stackl_rpc_handled_total")?.get();
    const byCode = Object.fromEntries((handled?.values ?? []).map((v) => [v.labels.code, v.value]));
    assert.deepEqual(byCode, { ok: 2, internal: 1 });
    const inFlight = await registry.getSingleMetric("stackl_rpc_in_flight")?.get();
    assert.ok((inFlight?.values ?? []).every((v) => v.value === 0));
  });

  it("ConnectErrors pass through unchanged", async () => {
    const transport = createRouterTransport(
      (router) =>
        router.service(TaskService, {
          getTask() {
            throw new ConnectError("nope", Code.PermissionDenied);
          },
        }),
      { router: { interceptors: [errorInterceptor(createLogger({ level: "silent" }))] } },
    );
    const err = await callError(createClient(TaskService, transport).getTask({ id: "x" }));
    assert.equal(err.code, Code.PermissionDenied);
    assert.equal(err.rawMessage, "nope");
  });
});
