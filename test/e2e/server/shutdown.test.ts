// (f) Graceful shutdown, in process: close() stops accepting, lets in-flight calls finish within the grace period,
// aborts the rest with UNAVAILABLE after it, and ends health watches so they do not hold it up.
import assert from "node:assert/strict";
import { EventEmitter, once } from "node:events";
import { describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../../gen/grpc/health/v1/health_pb.js";
import { TaskService } from "../../../gen/stackl/v1/tasks_pb.js";
import type { RegisterServices } from "../../../src/server/routes.js";
import { startTestServer } from "../../support/server.js";
import { grpcJsClient, unary } from "./grpc-js-client.js";

/**
 * A TaskService whose GetTask announces itself ("entered") and then waits until the test releases it ("release")
 * or its signal aborts (then it rethrows the reason).
 */
function slowService(events: EventEmitter): RegisterServices {
  return (router) => {
    router.service(TaskService, {
      async getTask(req, ctx) {
        events.emit("entered", req.id);
        await new Promise<void>((resolve, reject) => {
          events.once("release", resolve);
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
        });
        return { task: { id: req.id, type: "slow" } };
      },
    });
  };
}

describe("graceful shutdown (in process)", () => {
  it("a call in flight finishes during the grace period; new connections are refused; state goes draining → stopped", async () => {
    const events = new EventEmitter();
    const srv = await startTestServer({ register: slowService(events), env: { STACKL_SHUTDOWN_GRACE: "30s" } });
    const foreign = grpcJsClient(TaskService, `127.0.0.1:${srv.port}`);
    const connect = createClient(TaskService, createGrpcTransport({ baseUrl: srv.url }));
    try {
      const entered = once(events, "entered");
      const enteredTwice = new Promise<void>((resolve) => {
        let n = 0;
        events.on("entered", () => {
          if (++n === 2) resolve();
        });
      });
      const viaGrpcJs = unary(foreign, TaskService.method.getTask, { id: "a" });
      const viaConnect = connect.getTask({ id: "b" });
      await entered;
      await enteredTwice;
      assert.equal(srv.server.activeRequests, 2);

      const started = performance.now();
      const closing = srv.server.close();
      assert.equal(srv.server.state, "draining");
      assert.equal(srv.server.health.status(""), "NOT_SERVING");
      // The listening socket is closed: a new connection is refused.
      await assert.rejects(fetch(`${srv.url}/healthz`), (err: Error) => {
        assert.match(
          String((err.cause as Error | undefined)?.message ?? err.message),
          /ECONNREFUSED|other side closed|fetch failed/,
        );
        return true;
      });

      events.emit("release");
      events.emit("release");
      const [a, b] = await Promise.all([viaGrpcJs, viaConnect]);
      assert.equal(a.task?.id, "a");
      assert.equal(b.task?.id, "b");
      await closing;
      assert.equal(srv.server.state, "stopped");
      assert.ok(performance.now() - started < 30_000, "stopped before the grace period ran out");
    } finally {
      foreign.close();
      await srv.close();
    }
  });

  it("after the grace period the rest is aborted: handlers see their signal abort, clients get UNAVAILABLE", async () => {
    const events = new EventEmitter();
    const srv = await startTestServer({ register: slowService(events), env: { STACKL_SHUTDOWN_GRACE: "300ms" } });
    const foreign = grpcJsClient(TaskService, `127.0.0.1:${srv.port}`);
    const connect = createClient(TaskService, createConnectTransport({ baseUrl: srv.url, httpVersion: "1.1" }));
    try {
      let entered = 0;
      const both = new Promise<void>((resolve) => {
        events.on("entered", () => {
          if (++entered === 2) resolve();
        });
      });
      const viaGrpcJs = unary(foreign, TaskService.method.getTask, { id: "a" }).then(
        () => assert.fail("should not succeed"),
        (err: { code: number; details: string }) => err,
      );
      const viaConnect = connect.getTask({ id: "b" }).then(
        () => assert.fail("should not succeed"),
        (err: unknown) => ConnectError.from(err),
      );
      await both;
      await srv.server.close();
      assert.equal(srv.server.state, "stopped");
      const [a, b] = await Promise.all([viaGrpcJs, viaConnect]);
      assert.equal(a.code, GrpcStatus.UNAVAILABLE);
      assert.match(a.details, /shutting down/);
      assert.equal(b.code, Code.Unavailable);
    } finally {
      foreign.close();
    }
  });

  it("health Watch streams get NOT_SERVING, then end, without holding up the shutdown", async () => {
    const srv = await startTestServer({ env: { STACKL_SHUTDOWN_GRACE: "30s" } });
    const health = createClient(Health, createGrpcTransport({ baseUrl: srv.url }));
    const watch = health.watch({ service: "" })[Symbol.asyncIterator]();
    const first = await watch.next();
    assert.equal(first.value?.status, Serving.SERVING);
    // An idle HTTP/1.1 keep-alive connection must not hold up the shutdown either.
    const res = await fetch(`${srv.url}/healthz`);
    await res.text();

    const started = performance.now();
    const closing = srv.server.close();
    const second = await watch.next();
    assert.equal(second.value?.status, Serving.NOT_SERVING);
    const end = await watch.next();
    assert.equal(end.done, true);
    await closing;
    assert.ok(performance.now() - started < 5_000, "the watch did not hold up the shutdown");
  });

  it("close(signal): aborting the signal skips the rest of the grace period", async () => {
    const events = new EventEmitter();
    const srv = await startTestServer({ register: slowService(events), env: { STACKL_SHUTDOWN_GRACE: "10m" } });
    const connect = createClient(TaskService, createGrpcTransport({ baseUrl: srv.url }));
    const entered = once(events, "entered");
    const call = connect.getTask({ id: "a" }).catch((err: unknown) => ConnectError.from(err));
    await entered;
    const force = new AbortController();
    const closing = srv.server.close(force.signal);
    force.abort();
    await closing;
    assert.equal(srv.server.state, "stopped");
    const err = await call;
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, Code.Unavailable);
  });
});
