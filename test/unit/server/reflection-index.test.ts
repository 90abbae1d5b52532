import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Health } from "../../../gen/grpc/health/v1/health_pb.js";
import { DocumentService } from "../../../gen/stackl/v1/documents_pb.js";
import { JobService } from "../../../gen/stackl/v1/jobs_pb.js";
import { STACKL_SERVICES } from "../../../src/server/api-services.js";
import { fileName, ReflectionIndex } from "../../../src/server/reflection-index.js";
import { answerReflection } from "../../../src/server/reflection-service.js";

const names = (files: Uint8Array[]) => files.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);

describe("ReflectionIndex", () => {
  const index = new ReflectionIndex([...STACKL_SERVICES, Health]);

  it("indexes every served file and its transitive imports", () => {
    const files = index.fileNames();
    for (const f of [
      "stackl/v1/documents.proto",
      "stackl/v1/jobs.proto",
      "stackl/v1/tasks.proto",
      "grpc/health/v1/health.proto",
      "google/protobuf/struct.proto",
      "google/protobuf/timestamp.proto",
      "google/protobuf/duration.proto",
    ]) {
      assert.ok(files.includes(f), `${f} in ${files.join(", ")}`);
    }
    assert.deepEqual(index.serviceNames, [...STACKL_SERVICES.map((s) => s.typeName), "grpc.health.v1.Health"].sort());
  });

  it("finds services, methods, messages, nested types, fields, enums and enum values", () => {
    const find = (s: string) => {
      const f = index.fileContainingSymbol(s);
      return f === undefined ? undefined : fileName(f);
    };
    assert.equal(find("stackl.v1.DocumentService"), "stackl/v1/documents.proto");
    assert.equal(find(".stackl.v1.DocumentService"), "stackl/v1/documents.proto");
    assert.equal(find("stackl.v1.JobService.RunJob"), "stackl/v1/jobs.proto");
    assert.equal(find(JobService.method.runJob.input.typeName), "stackl/v1/jobs.proto");
    assert.equal(find("stackl.v1.DocumentMeta.LabelsEntry"), "stackl/v1/documents.proto");
    assert.equal(find("stackl.v1.DocumentMeta.name"), "stackl/v1/documents.proto");
    assert.equal(find("stackl.v1.DocumentKind"), "stackl/v1/documents.proto");
    assert.equal(find("stackl.v1.DOCUMENT_KIND_ZONE"), "stackl/v1/documents.proto");
    assert.equal(find("google.protobuf.Struct"), "google/protobuf/struct.proto");
    assert.equal(find("stackl.v1.Nope"), undefined);
  });

  it("sends the requested file first, then imports not yet sent on the stream", () => {
    const sent = new Set<string>();
    const file = DocumentService.file;
    const first = names(index.withDependencies(file, sent));
    assert.equal(first[0], "stackl/v1/documents.proto");
    assert.ok(first.includes("google/protobuf/struct.proto"));
    assert.equal(new Set(first).size, first.length, "no file twice");
    assert.deepEqual(names(index.withDependencies(file, sent)), ["stackl/v1/documents.proto"]);
  });

  it("answers every request kind, with NOT_FOUND (5) for unknown names", () => {
    const sent = new Set<string>();
    const list = answerReflection(index, { case: "listServices", value: "" }, sent);
    assert.equal(list.case, "listServicesResponse");
    const byName = answerReflection(index, { case: "fileByFilename", value: "grpc/health/v1/health.proto" }, sent);
    assert.equal(byName.case, "fileDescriptorResponse");
    for (const q of [
      { case: "fileByFilename", value: "nope.proto" },
      { case: "fileContainingSymbol", value: "nope.Nope" },
      { case: "allExtensionNumbersOfType", value: "nope.Nope" },
    ] as const) {
      const a = answerReflection(index, q, sent);
      assert.equal(a.case, "errorResponse");
      assert.equal(a.value.errorCode, 5);
    }
    const ext = answerReflection(
      index,
      { case: "fileContainingExtension", value: { containingType: "x.Y", extensionNumber: 1 } as never },
      sent,
    );
    assert.equal(ext.case, "errorResponse");
    const empty = answerReflection(index, { case: undefined }, sent);
    assert.equal(empty.case, "errorResponse");
    assert.equal(empty.value.errorCode, 3);
  });
});
