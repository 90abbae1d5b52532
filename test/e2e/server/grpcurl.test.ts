// (b) grpcurl and `buf curl` — third-party tools with no proto files at hand — list and describe the API through
// server reflection.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { STACKL_SERVICES } from "../../../src/server/api-services.js";
import { startTestServer, type TestServer } from "../../support/server.js";
import { repoRoot, toolPath } from "../../support/tools.js";

const run = promisify(execFile);
/** Upper bound for one tool invocation (a hung tool fails the test instead of hanging it). */
const TOOL_TIMEOUT_MS = 30_000;

const EXPECTED_SERVICES = [
  ...STACKL_SERVICES.map((s) => s.typeName),
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
].sort();

describe("grpcurl and buf curl through server reflection", () => {
  let srv: TestServer;
  let grpcurl: string;
  let target: string;

  const grpcurlRun = async (...args: string[]): Promise<string> => {
    const { stdout } = await run(grpcurl, ["-plaintext", ...args], { timeout: TOOL_TIMEOUT_MS });
    return stdout;
  };

  before(async () => {
    grpcurl = toolPath("grpcurl");
    srv = await startTestServer();
    target = `127.0.0.1:${srv.port}`;
  });
  after(() => srv.close());

  it("`grpcurl -plaintext HOST:PORT list` shows every stackl.v1 service, health and both reflection services", async () => {
    const out = await grpcurlRun(target, "list");
    assert.deepEqual(out.trim().split("\n").sort(), EXPECTED_SERVICES);
  });

  it("`grpcurl list stackl.v1.DocumentService` lists its methods", async () => {
    const out = await grpcurlRun(target, "list", "stackl.v1.DocumentService");
    for (const m of ["ApplyDocuments", "GetDocument", "ListDocuments", "WatchDocuments", "RestoreRevision"]) {
      assert.ok(out.includes(`stackl.v1.DocumentService.${m}`), `${m} in:\n${out}`);
    }
  });

  it("`grpcurl describe stackl.v1.DocumentService` prints the service", async () => {
    const out = await grpcurlRun(target, "describe", "stackl.v1.DocumentService");
    assert.match(out, /stackl\.v1\.DocumentService is a service:/);
    assert.match(out, /rpc ApplyDocuments \( \.stackl\.v1\.ApplyDocumentsRequest \)/);
    assert.match(out, /rpc WatchDocuments \( \.stackl\.v1\.WatchDocumentsRequest \) returns \( stream /);
  });

  it("`grpcurl describe stackl.v1.DocumentService.ApplyDocuments` prints the method, and its messages resolve", async () => {
    const out = await grpcurlRun(target, "describe", "stackl.v1.DocumentService.ApplyDocuments");
    assert.match(out, /stackl\.v1\.DocumentService\.ApplyDocuments is a method:/);
    const msg = await grpcurlRun(target, "describe", "stackl.v1.ApplyDocumentsRequest");
    assert.match(msg, /repeated \.stackl\.v1\.DocumentWrite documents = 1/);
  });

  it("every stackl.v1 service describes (all imports, incl. well-known types, are served)", async () => {
    for (const service of STACKL_SERVICES) {
      const out = await grpcurlRun(target, "describe", service.typeName);
      assert.match(out, new RegExp(`${service.typeName.replace(/\./g, "\\.")} is a service:`));
    }
  });

  it("grpcurl calls Health/Check and gets SERVING; an unimplemented RPC reports the issue that builds it", async () => {
    const out = await grpcurlRun(target, "grpc.health.v1.Health/Check");
    assert.equal(JSON.parse(out).status, "SERVING");
    await assert.rejects(run(grpcurl, ["-plaintext", "-d", `{"id":"x"}`, target, "stackl.v1.TaskService/GetTask"]), {
      stderr: /Code: Unimplemented\s+Message: stackl\.v1\.TaskService\.GetTask is not implemented yet; issue #4/,
    });
  });

  it("`buf curl --list-services` (reflection over gRPC) lists the same services", async () => {
    const buf = path.join(repoRoot, "node_modules", ".bin", "buf");
    const { stdout } = await run(buf, ["curl", "--list-services", "--protocol", "grpc", srv.url], {
      timeout: TOOL_TIMEOUT_MS,
    });
    assert.deepEqual(stdout.trim().split("\n").sort(), EXPECTED_SERVICES);
    const check = await run(buf, ["curl", "--protocol", "grpc", `${srv.url}/grpc.health.v1.Health/Check`], {
      timeout: TOOL_TIMEOUT_MS,
    });
    assert.equal(JSON.parse(check.stdout).status, "SERVING");
  });
});
