// (a) A foreign gRPC client (@grpc/grpc-js) over h2c: health checks and server reflection answer correctly.
import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { DocumentService } from "../../../gen/stackl/v1/documents_pb.js";
import { STACKL_SERVICES } from "../../../src/server/api-services.js";
import type { HealthComponent } from "../../../src/server/health-monitor.js";
import { startTestServer, type TestServer } from "../../support/server.js";
import { ask, bidi, type GrpcJsClient, grpcJsClient, unary } from "./grpc-js-client.js";

const EXPECTED_SERVICES = [
  ...STACKL_SERVICES.map((s) => s.typeName),
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
].sort();

/** A readiness component the test switches on and off. */
function toggle(name: string, ready: boolean): HealthComponent & { ready: boolean } {
  return {
    name,
    ready,
    async check() {
      return this.ready;
    },
  };
}

describe("foreign gRPC client (@grpc/grpc-js) over h2c", () => {
  let srv: TestServer;
  let health: GrpcJsClient;
  const store = toggle("store", true);
  const bus = toggle("bus", true);

  before(async () => {
    srv = await startTestServer({ healthComponents: [store, bus] });
    health = grpcJsClient(Health, `127.0.0.1:${srv.port}`);
  });
  after(async () => {
    health.close();
    await srv.close();
  });

  it("Health.Check answers SERVING for the server and for every served service", async () => {
    for (const service of ["", ...EXPECTED_SERVICES]) {
      const res = await unary(health, Health.method.check, { service });
      assert.equal(res.status, Serving.SERVING, `service ${JSON.stringify(service)}`);
    }
  });

  it("Health.Check on an unknown service fails with NOT_FOUND", async () => {
    await assert.rejects(unary(health, Health.method.check, { service: "no.such.Service" }), (err: ServiceError) => {
      assert.equal(err.code, GrpcStatus.NOT_FOUND);
      return true;
    });
  });

  it("Health reports the real readiness of its components, and Watch emits every change", async () => {
    const watch = (health[Health.method.watch.localName] as (req: object) => NodeJS.ReadableStream).call(health, {
      service: "",
    });
    const statuses: Serving[] = [];
    const next = async (): Promise<Serving> => {
      const [res] = (await once(watch, "data")) as [{ status: Serving }];
      statuses.push(res.status);
      return res.status;
    };
    try {
      assert.equal(await next(), Serving.SERVING);
      bus.ready = false; // the bus goes away
      assert.equal(await next(), Serving.NOT_SERVING);
      const checked = await unary(health, Health.method.check, { service: "stackl.v1.DocumentService" });
      assert.equal(checked.status, Serving.NOT_SERVING);
      bus.ready = true;
      assert.equal(await next(), Serving.SERVING);
      assert.deepEqual(statuses, [Serving.SERVING, Serving.NOT_SERVING, Serving.SERVING]);
    } finally {
      bus.ready = true;
      watch.on("error", () => undefined); // CANCELLED, by us
      (watch as unknown as { cancel(): void }).cancel();
    }
  });

  it("Health.Watch on an unknown service answers SERVICE_UNKNOWN and keeps the stream open", async () => {
    const watch = (health[Health.method.watch.localName] as (req: object) => NodeJS.ReadableStream).call(health, {
      service: "no.such.Service",
    });
    const [res] = (await once(watch, "data")) as [{ status: Serving }];
    assert.equal(res.status, Serving.SERVICE_UNKNOWN);
    const ended = once(watch, "error").catch(() => undefined);
    (watch as unknown as { cancel(): void }).cancel();
    await ended;
  });

  for (const [label, service] of [
    ["v1", ReflectionV1],
    ["v1alpha", ReflectionV1Alpha],
  ] as const) {
    it(`reflection ${label}: list_services names every stackl.v1 service, health and both reflection services`, async () => {
      const client = grpcJsClient(service, `127.0.0.1:${srv.port}`);
      const stream = bidi(client, service.method.serverReflectionInfo);
      try {
        const res = await ask(stream, { host: "", messageRequest: { case: "listServices", value: "*" } });
        assert.equal(res.messageResponse.case, "listServicesResponse");
        const names = res.messageResponse.value.service.map((s) => s.name).sort();
        assert.deepEqual(names, EXPECTED_SERVICES);
      } finally {
        stream.end();
        client.close();
      }
    });
  }

  it("reflection v1: file_containing_symbol returns the defining file first, then its imports", async () => {
    const client = grpcJsClient(ReflectionV1, `127.0.0.1:${srv.port}`);
    const stream = bidi(client, ReflectionV1.method.serverReflectionInfo);
    const fileNames = (res: Awaited<ReturnType<typeof ask<{ messageResponse: unknown }>>>): string[] => {
      const r = res.messageResponse as { case: string; value: { fileDescriptorProto: Uint8Array[] } };
      assert.equal(r.case, "fileDescriptorResponse");
      return r.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
    };
    try {
      // A service: the file and every transitive import (grpcurl needs them to build the descriptor).
      const svc = fileNames(
        await ask(stream, { messageRequest: { case: "fileContainingSymbol", value: "stackl.v1.DocumentService" } }),
      );
      assert.equal(svc[0], "stackl/v1/documents.proto");
      for (const dep of ["google/protobuf/struct.proto", "google/protobuf/timestamp.proto"]) {
        assert.ok(svc.includes(dep), `${dep} in ${svc.join(", ")}`);
      }
      const descriptor = fromBinary(
        FileDescriptorProtoSchema,
        (
          (
            await ask(stream, {
              messageRequest: { case: "fileByFilename", value: "stackl/v1/documents.proto" },
            })
          ).messageResponse as { value: { fileDescriptorProto: Uint8Array[] } }
        ).value.fileDescriptorProto[0] as Uint8Array,
      );
      const docService = descriptor.service.find((s) => s.name === "DocumentService");
      assert.ok(docService?.method.some((m) => m.name === "ApplyDocuments"));
      // Imports already sent on this stream are not sent again; the requested file always is.
      const again = fileNames(
        await ask(stream, { messageRequest: { case: "fileContainingSymbol", value: "stackl.v1.Document" } }),
      );
      assert.deepEqual(again, ["stackl/v1/documents.proto"]);
      // A method, a nested type and an enum value.
      for (const symbol of [
        "stackl.v1.DocumentService.ApplyDocuments",
        DocumentService.method.getDocument.input.typeName,
        "grpc.health.v1.HealthCheckResponse.ServingStatus",
        "grpc.health.v1.HealthCheckResponse.SERVING",
      ]) {
        const names = fileNames(await ask(stream, { messageRequest: { case: "fileContainingSymbol", value: symbol } }));
        assert.ok(names.length >= 1, symbol);
      }
      // Unknown names: an error_response with NOT_FOUND, and the stream goes on.
      const missing = await ask(stream, { messageRequest: { case: "fileContainingSymbol", value: "no.Such" } });
      assert.equal(missing.messageResponse.case, "errorResponse");
      assert.equal(missing.messageResponse.value.errorCode, GrpcStatus.NOT_FOUND);
      const missingFile = await ask(stream, { messageRequest: { case: "fileByFilename", value: "nope.proto" } });
      assert.equal(missingFile.messageResponse.case, "errorResponse");
      assert.equal(missingFile.messageResponse.value.errorCode, GrpcStatus.NOT_FOUND);
      const ext = await ask(stream, {
        messageRequest: {
          case: "fileContainingExtension",
          value: { containingType: "stackl.v1.Document", extensionNumber: 1000 },
        },
      });
      assert.equal(ext.messageResponse.case, "errorResponse");
      const numbers = await ask(stream, {
        messageRequest: { case: "allExtensionNumbersOfType", value: "stackl.v1.Document" },
      });
      assert.equal(numbers.messageResponse.case, "allExtensionNumbersResponse");
      assert.deepEqual(numbers.messageResponse.value.extensionNumber, []);
    } finally {
      stream.end();
      client.close();
    }
  });

  it("a stackl.v1 method with no implementation answers UNIMPLEMENTED naming the issue that builds it", async () => {
    const client = grpcJsClient(DocumentService, `127.0.0.1:${srv.port}`);
    try {
      await assert.rejects(unary(client, DocumentService.method.getDocument, { name: "x" }), (err: ServiceError) => {
        assert.equal(err.code, GrpcStatus.UNIMPLEMENTED);
        assert.match(err.details, /DocumentService\.GetDocument is not implemented yet; issue #3/);
        return true;
      });
    } finally {
      client.close();
    }
  });
});
