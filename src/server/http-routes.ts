import type { ServerResponse } from "node:http";
import type { Registry } from "prom-client";
import type { Logger } from "../observability/logger.js";
import type { HealthMonitor } from "./health-monitor.js";
import type { NodeRequest, NodeResponse } from "./listener.js";

export interface HttpRoutesOptions {
  metrics: Registry;
  health: () => HealthMonitor;
  logger: Logger;
}

function send(res: NodeResponse, status: number, contentType: string, body: string, head: boolean): void {
  // The same calls work on http.ServerResponse and http2.Http2ServerResponse.
  const r = res as ServerResponse;
  r.writeHead(status, { "content-type": contentType, "cache-control": "no-store" });
  if (head) r.end();
  else r.end(body);
}

/**
 * Plain HTTP routes served next to the RPCs on the same port (the Connect adapter's fallback):
 * `GET /metrics` (Prometheus text format) and `GET /healthz` (JSON for humans and simple probes: 200 when SERVING,
 * 503 otherwise). Anything else is 404.
 */
export function httpRoutes(options: HttpRoutesOptions): (req: NodeRequest, res: NodeResponse) => void {
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0];
    const method = req.method ?? "";
    const head = method === "HEAD";
    if ((method === "GET" || head) && path === "/metrics") {
      options.metrics.metrics().then(
        (text) => send(res, 200, options.metrics.contentType, text, head),
        (err: unknown) => {
          options.logger.error({ err }, "collecting metrics failed");
          send(res, 500, "text/plain; charset=utf-8", "collecting metrics failed\n", head);
        },
      );
      return;
    }
    if ((method === "GET" || head) && path === "/healthz") {
      const snapshot = options.health().snapshot();
      const status = snapshot.status === "SERVING" ? 200 : 503;
      send(res, status, "application/json", `${JSON.stringify(snapshot)}\n`, head);
      return;
    }
    send(res, 404, "text/plain; charset=utf-8", "not found\n", head);
  };
}
