// TLS on the same one port: ALPN gives gRPC clients HTTP/2 and older clients HTTP/1.1.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { TLSSocket } from "node:tls";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../../gen/grpc/health/v1/health_pb.js";
import { DocumentService } from "../../../gen/stackl/v1/documents_pb.js";
import { startTestServer, type TestServer } from "../../support/server.js";
import { toolPath } from "../../support/tools.js";
import { grpcJsClient, unary } from "./grpc-js-client.js";

const run = promisify(execFile);

describe("TLS (one port, ALPN h2 + http/1.1)", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "stackl-tls-"));
  const certFile = path.join(dir, "cert.pem");
  const keyFile = path.join(dir, "key.pem");
  let cert: Buffer;
  let srv: TestServer;

  before(async () => {
    // A throwaway self-signed certificate for 127.0.0.1 / localhost.
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout",
      keyFile,
      "-out",
      certFile,
    ]);
    cert = readFileSync(certFile);
    srv = await startTestServer({ env: { STACKL_TLS_CERT: certFile, STACKL_TLS_KEY: keyFile } });
  });
  after(async () => {
    await srv?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves https:// and gRPC over TLS to a foreign client (grpc-js)", async () => {
    assert.match(srv.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const client = grpcJsClient(
      Health,
      `127.0.0.1:${srv.port}`,
      { "grpc.ssl_target_name_override": "localhost" },
      grpc.credentials.createSsl(cert),
    );
    try {
      const res = await unary(client, Health.method.check, { service: "stackl.v1.DocumentService" });
      assert.equal(res.status, Serving.SERVING);
    } finally {
      client.close();
    }
  });

  it("Connect and gRPC from connect-node over TLS (HTTP/2), and Connect over HTTP/1.1 (ALPN http/1.1)", async () => {
    const grpcHealth = createClient(
      Health,
      createGrpcTransport({ baseUrl: srv.url, nodeOptions: { ca: cert, servername: "localhost" } }),
    );
    assert.equal((await grpcHealth.check({ service: "" })).status, Serving.SERVING);
    const connectDocs = createClient(
      DocumentService,
      createConnectTransport({
        baseUrl: srv.url,
        httpVersion: "2",
        nodeOptions: { ca: cert, servername: "localhost" },
      }),
    );
    await assert.rejects(connectDocs.getDocument({ name: "x" }), /not implemented yet; issue #3/);

    const body = await new Promise<{ status: number; alpn: string | false | null; text: string }>((resolve, reject) => {
      const req = https.request(
        `${srv.url}/stackl.v1.DocumentService/GetDocument`,
        {
          method: "POST",
          headers: { "content-type": "application/json", "connect-protocol-version": "1" },
          // An HTTP/1.1-only client: it offers only http/1.1 in ALPN.
          agent: new https.Agent({ ca: cert, servername: "localhost", ALPNProtocols: ["http/1.1"] }),
        },
        (res) => {
          const alpn = (res.socket as TLSSocket).alpnProtocol;
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            text += c;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, alpn, text }));
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify({ name: "x" }));
    });
    assert.equal(body.alpn, "http/1.1");
    assert.equal(body.status, 501);
    assert.equal(JSON.parse(body.text).code, "unimplemented");
  });

  it("grpcurl lists the API over TLS", async () => {
    const { stdout } = await run(toolPath("grpcurl"), ["-cacert", certFile, `127.0.0.1:${srv.port}`, "list"], {
      timeout: 30_000,
    });
    assert.match(stdout, /stackl\.v1\.DocumentService/);
    assert.match(stdout, /grpc\.health\.v1\.Health/);
  });
});
