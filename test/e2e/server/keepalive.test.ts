// Server keepalive on HTTP/2 (DESIGN section 6): the server pings every connection; a peer that does not answer is
// disconnected, a live one is not. Short intervals so that the test takes milliseconds.
import assert from "node:assert/strict";
import { once } from "node:events";
import http2 from "node:http2";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { silentLogger } from "../../../src/observability/logger.js";
import { Listener } from "../../../src/server/listener.js";

const INTERVAL_MS = 50;
const TIMEOUT_MS = 50;

describe("HTTP/2 keepalive pings", () => {
  let listener: Listener;
  let port: number;

  before(async () => {
    listener = new Listener(
      (_req, res) => {
        res.writeHead(200);
        res.end("ok");
      },
      {
        host: "127.0.0.1",
        port: 0,
        logger: silentLogger(),
        keepaliveIntervalMs: INTERVAL_MS,
        keepaliveTimeoutMs: TIMEOUT_MS,
      },
    );
    port = (await listener.listen()).port;
  });
  after(async () => {
    listener.drain();
    listener.destroy();
    await listener.closed(AbortSignal.timeout(5_000));
  });

  it("a live HTTP/2 client is pinged and stays connected", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      await once(session, "connect");
      await once(session, "ping");
      await once(session, "ping");
      assert.equal(session.closed, false);
      assert.equal(session.destroyed, false);
    } finally {
      session.close();
    }
  });

  it("a peer that stops answering PINGs is disconnected", async () => {
    // Speak just enough HTTP/2 to open a session (preface + empty SETTINGS), then go silent: never ACK anything.
    const socket = net.connect(port, "127.0.0.1");
    await once(socket, "connect");
    const settings = Buffer.from([0, 0, 0, 0x04, 0, 0, 0, 0, 0]);
    socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), settings]));
    socket.resume(); // read and ignore the server's frames (SETTINGS, SETTINGS ACK, PING…)
    const started = performance.now();
    await once(socket, "close");
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= INTERVAL_MS, `closed after ${elapsed.toFixed(0)} ms`);
  });

  it("an HTTP/1.1 client on the same port is served", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "ok");
  });
});
