import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { DocumentService } from "../../../gen/stackl/v1/documents_pb.js";
import { createLogger } from "../../../src/observability/logger.js";
import { STACKL_SERVICES } from "../../../src/server/api-services.js";
import { specEncodeGrpcMessage } from "../../../src/server/grpc-message-encoding.js";
import { IMPLEMENTED_BY, unimplementedError } from "../../../src/server/unimplemented.js";

describe("grpc-message encoding", () => {
  it("re-encodes connect's encodeURIComponent form the way the gRPC spec asks", () => {
    const text = "a: b; c #1 100% ünï\n";
    const spec = specEncodeGrpcMessage(encodeURIComponent(text));
    assert.equal(spec, "a: b; c #1 100%25 %C3%BCn%C3%AF%0A");
    assert.equal(decodeURIComponent(spec), text); // every decoder gets the text back
    assert.equal(decodeURI(spec.replace(/%25/g, "%2525")).length > 0, true);
  });
});

describe("unimplemented", () => {
  it("every stackl.v1 service names the issue that implements it", () => {
    for (const s of STACKL_SERVICES) assert.ok(IMPLEMENTED_BY[s.typeName], s.typeName);
    const err = unimplementedError(DocumentService.method.applyDocuments);
    assert.equal(err.code, Code.Unimplemented);
    assert.equal(
      err.rawMessage,
      "stackl.v1.DocumentService.ApplyDocuments is not implemented yet; issue #3 (document datastore) implements it",
    );
  });
});

describe("logger", () => {
  it("redacts tokens, secrets and credentials up to two levels deep", () => {
    let out = "";
    const logger = createLogger({
      level: "info",
      destination: new Writable({
        write(chunk: Buffer, _e, cb) {
          out += chunk.toString();
          cb();
        },
      }),
    });
    logger.info({ token: "t0p", agent: { credential: "c1", name: "a" }, job: { env: { secret: "s3" } } }, "x");
    assert.doesNotMatch(out, /t0p|c1|s3/);
    const line = JSON.parse(out) as { agent: { name: string; credential: string }; level: string; time: string };
    assert.equal(line.agent.name, "a");
    assert.equal(line.agent.credential, "[redacted]");
    assert.equal(line.level, "info");
    assert.match(line.time, /^\d{4}-\d\d-\d\dT/);
  });
});
