import { EventEmitter, once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "../observability/logger.js";

/**
 * ONE TCP port for every protocol: gRPC (HTTP/2), gRPC-Web and Connect (HTTP/1.1 and HTTP/2), plus plain HTTP
 * routes (`/metrics`, `/healthz`), all answered by one request handler.
 *
 * - Plaintext: Node's `http2.createServer` cannot also speak HTTP/1.1 (`allowHTTP1` only works with TLS/ALPN), so a
 *   `net.Server` reads the first bytes of each connection and hands the socket to an `http2.Server` when they are
 *   the HTTP/2 client preface (h2c with prior knowledge, what gRPC clients send) and to an `http.Server` otherwise.
 * - TLS: `http2.createSecureServer({ allowHTTP1: true })`; ALPN picks h2 or http/1.1.
 *
 * HTTP/2 limits are set on purpose (see the constants), and the server pings every HTTP/2 connection to find dead
 * peers (DESIGN section 6: 10 s ping, 5 s timeout), because Node does not do it by itself.
 */

/** The HTTP/2 client connection preface (RFC 9113 section 3.4). */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** A connection that sends nothing for this long before we can tell HTTP/1.1 from HTTP/2 is closed. */
export const SNIFF_TIMEOUT_MS = 10_000;
/** Server PING interval on every HTTP/2 connection (idle or not). */
export const KEEPALIVE_INTERVAL_MS = 10_000;
/** A PING not acknowledged within this time closes the connection: dead peers are found in <= 15 s. */
export const KEEPALIVE_TIMEOUT_MS = 5_000;
/** TCP keepalive probes for HTTP/1.1 connections and for the sockets under HTTP/2. */
export const TCP_KEEPALIVE_DELAY_MS = 10_000;
/** Concurrent streams (calls) one HTTP/2 connection may open (SETTINGS_MAX_CONCURRENT_STREAMS; Node: unlimited). */
export const MAX_CONCURRENT_STREAMS = 1_000;
/** Memory one HTTP/2 session may use, in MB (Node default 10): headers, queued output, unacked frames. */
export const MAX_SESSION_MEMORY_MB = 32;
/** Largest header block a peer may send (SETTINGS_MAX_HEADER_LIST_SIZE), and the HTTP/1.1 header limit. */
export const MAX_HEADER_LIST_BYTES = 16 * 1024;
/** Header fields per request (CONTINUATION-flood class of attacks). */
export const MAX_HEADER_LIST_PAIRS = 128;
/** Streams a session may have refused before it is closed (rapid-reset class). */
export const MAX_SESSION_REJECTED_STREAMS = 100;
/** RST_STREAM rate limit per session: burst and per-second refill (CVE-2023-44487 mitigation, Node >= 22.11). */
export const STREAM_RESET_BURST = 1_000;
export const STREAM_RESET_RATE = 33;
/** Unread request bytes the server discards after answering early, before it resets the stream instead. */
export const UNREAD_BODY_DISCARD_BYTES = 16 * 1024 * 1024;
/** Time a client gets to finish sending a request that was already answered, before the stream is reset. */
export const UNREAD_BODY_TIMEOUT_MS = 1_000;
/** HTTP/1.1: time to receive the request headers (slowloris). */
export const HTTP1_HEADERS_TIMEOUT_MS = 15_000;
/** HTTP/1.1: idle time of a keep-alive connection between requests. */
export const HTTP1_KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** The request handler shape shared by `http`, `http2` and the Connect adapter. */
export type NodeRequestHandler = ReturnType<typeof connectNodeAdapter>;
export type NodeRequest = Parameters<NodeRequestHandler>[0];
export type NodeResponse = Parameters<NodeRequestHandler>[1];

export interface ListenerOptions {
  /** Address to bind. */
  host: string;
  /** Port to bind; 0 = any free port. */
  port: number;
  /** PEM certificate and key: TLS with ALPN (h2, http/1.1). @default undefined (plaintext) */
  tls?: { cert: Buffer; key: Buffer } | undefined;
  logger: Logger;
  /** @default KEEPALIVE_INTERVAL_MS */
  keepaliveIntervalMs?: number;
  /** @default KEEPALIVE_TIMEOUT_MS */
  keepaliveTimeoutMs?: number;
}

function http2Options(): http2.ServerOptions {
  return {
    maxSessionMemory: MAX_SESSION_MEMORY_MB,
    maxHeaderListPairs: MAX_HEADER_LIST_PAIRS,
    maxSessionRejectedStreams: MAX_SESSION_REJECTED_STREAMS,
    streamResetBurst: STREAM_RESET_BURST,
    streamResetRate: STREAM_RESET_RATE,
    settings: {
      maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
      maxHeaderListSize: MAX_HEADER_LIST_BYTES,
      enablePush: false,
    },
  };
}

/**
 * The listening part of the server. Counts requests in flight so that a graceful shutdown knows when it is done;
 * `drain()` stops accepting connections and sends GOAWAY; `destroy()` cuts whatever is left.
 */
export class Listener {
  private readonly logger: Logger;
  private readonly options: ListenerOptions;
  private readonly server: net.Server | http2.Http2SecureServer;
  private readonly h2: http2.Http2Server | http2.Http2SecureServer;
  private readonly h1: http.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly events = new EventEmitter();
  private readonly inFlight = new Set<{ path: string; since: number }>();
  /** HTTP/1.1 connections and how many requests each has in flight (0 = idle keep-alive). */
  private readonly h1Sockets = new Map<net.Socket, number>();
  /** Plaintext connections whose protocol is not known yet. */
  private readonly sniffing = new Set<net.Socket>();
  private draining = false;

  constructor(handler: NodeRequestHandler, options: ListenerOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: "listener" });
    const counted = (req: NodeRequest, res: NodeResponse): void => this.onRequest(handler, req, res);
    if (options.tls !== undefined) {
      const secure = http2.createSecureServer(
        { ...http2Options(), cert: options.tls.cert, key: options.tls.key, allowHTTP1: true },
        counted,
      );
      secure.on("connection", (socket: net.Socket) => this.track(socket));
      secure.on("tlsClientError", (err: Error) => this.logger.debug({ err }, "TLS handshake failed"));
      this.server = secure;
      this.h2 = secure;
      this.h1 = undefined;
    } else {
      this.h2 = http2.createServer(http2Options(), counted);
      this.h1 = http.createServer(
        {
          maxHeaderSize: MAX_HEADER_LIST_BYTES,
          headersTimeout: HTTP1_HEADERS_TIMEOUT_MS,
          keepAliveTimeout: HTTP1_KEEP_ALIVE_TIMEOUT_MS,
        },
        counted,
      );
      // The http.Server never listens itself (sockets are handed to it), so start the timer that enforces
      // headersTimeout/requestTimeout the way `listen()` would.
      this.h1.emit("listening");
      this.h1.on("clientError", (err: Error, socket: net.Socket) => {
        this.logger.debug({ err }, "bad HTTP/1.1 request");
        if (socket.writable && !socket.writableEnded)
          socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        else socket.destroy();
      });
      this.server = net.createServer({ noDelay: true }, (socket) => this.onPlainConnection(socket));
    }
    this.h2.on("session", (session: http2.ServerHttp2Session) => this.onSession(session));
    this.h2.on("sessionError", (err: Error) => this.logger.debug({ err }, "HTTP/2 session error"));
  }

  /** Binds the port. Rejects when binding fails or `signal` aborts first. */
  async listen(signal?: AbortSignal): Promise<net.AddressInfo> {
    signal?.throwIfAborted();
    const server = this.server;
    server.listen({ host: this.options.host, port: this.options.port, exclusive: true });
    await once(server, "listening", { signal });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("listener: no TCP address after listen");
    return address;
  }

  /** Requests (calls) being handled right now, over every protocol. */
  get activeRequests(): number {
    return this.inFlight.size;
  }

  /** Paths of the requests in flight with their age in ms, oldest first (for the shutdown log). */
  activeRequestPaths(): { path: string; age_ms: number }[] {
    const now = performance.now();
    return [...this.inFlight].map((r) => ({ path: r.path, age_ms: Math.round(now - r.since) }));
  }

  /** Open TCP connections. */
  get connections(): number {
    return this.sockets.size;
  }

  /**
   * Graceful part of shutdown: stop accepting connections, send GOAWAY on every HTTP/2 session (calls in flight go
   * on; new streams are refused and clients retry elsewhere), close idle HTTP/1.1 connections and close busy ones
   * after their response. Connections then go away by themselves as their calls end (`closed()`).
   */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.server.close();
    for (const session of this.sessions) this.closeSession(session);
    for (const [socket, busy] of this.h1Sockets) if (busy === 0) socket.end();
    for (const socket of this.sniffing) socket.destroy();
  }

  /** Resolves when no request is in flight (at once if none), or when `signal` aborts (then rejects). */
  async idle(signal: AbortSignal): Promise<void> {
    if (this.inFlight.size === 0) return;
    await once(this.events, "idle", { signal });
  }

  /** Cuts every connection now (what is left at the end of a shutdown). */
  destroy(): void {
    this.draining = true;
    this.server.close();
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
    this.h1?.close();
  }

  /**
   * Resolves when the listening socket is closed and every connection is gone (after `drain()`, HTTP/2 sessions close
   * once their last stream ends and their frames are flushed; HTTP/1.1 connections after their last response).
   */
  async closed(signal?: AbortSignal): Promise<void> {
    if (this.server.listening) await once(this.server, "close", { signal });
    while (this.sockets.size > 0) await once(this.events, "socket-closed", { signal });
  }

  private onRequest(handler: NodeRequestHandler, req: NodeRequest, res: NodeResponse): void {
    const entry = { path: (req.url ?? "").split("?", 1)[0] ?? "", since: performance.now() };
    this.inFlight.add(entry);
    const h1Socket = req.httpVersionMajor === 1 ? req.socket : undefined;
    if (h1Socket !== undefined) {
      const busy = this.h1Sockets.get(h1Socket);
      if (busy === undefined) h1Socket.once("close", () => this.h1Sockets.delete(h1Socket));
      this.h1Sockets.set(h1Socket, (busy ?? 0) + 1);
    }
    res.once("close", () => {
      this.inFlight.delete(entry);
      if (h1Socket !== undefined && this.h1Sockets.has(h1Socket)) {
        const busy = (this.h1Sockets.get(h1Socket) ?? 1) - 1;
        this.h1Sockets.set(h1Socket, busy);
        // Draining: an HTTP/1.1 connection closes after its last response (it has no GOAWAY).
        if (busy === 0 && this.draining) h1Socket.end();
      }
      if (this.inFlight.size === 0) this.events.emit("idle");
    });
    if (req.httpVersionMajor === 2) this.endUnreadBody((req as http2.Http2ServerRequest).stream);
    if (this.draining && h1Socket !== undefined && !res.headersSent) {
      (res as http.ServerResponse).setHeader("connection", "close");
    }
    handler(req, res);
  }

  /**
   * A response can be complete before its request was read to the end (an oversized message is rejected from its
   * length prefix). The stream then stays half-open: the client is blocked on flow control and the call never
   * leaves the in-flight count. So, once the response is written: discard the rest of the request (bounded), and if
   * the client has not finished sending within UNREAD_BODY_TIMEOUT_MS, end the stream with RST_STREAM(NO_ERROR)
   * (RFC 9113 section 8.1). Not RST at once: connect-node clients report an immediate reset as "Premature close"
   * instead of the status they were sent.
   */
  private endUnreadBody(stream: http2.ServerHttp2Stream): void {
    stream.once("finish", () => {
      // 'finish' = our side is written; the compat layer sends the trailers right after ('wantTrailers').
      setImmediate(() => {
        if (stream.destroyed || stream.readableEnded) return;
        let discarded = 0;
        const reset = (): void => {
          if (!stream.destroyed) stream.destroy(); // RST_STREAM(NO_ERROR): no error, just "stop sending"
        };
        const timer = setTimeout(reset, UNREAD_BODY_TIMEOUT_MS);
        timer.unref();
        stream.once("close", () => clearTimeout(timer));
        // Nobody reads the request any more (the compat request may be destroyed and would keep the stream paused).
        stream.removeAllListeners("data");
        stream.on("data", (chunk: Buffer) => {
          discarded += chunk.length;
          if (discarded > UNREAD_BODY_DISCARD_BYTES) reset();
        });
        stream.resume();
      });
    });
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setKeepAlive(true, TCP_KEEPALIVE_DELAY_MS);
    socket.once("close", () => {
      this.sockets.delete(socket);
      this.events.emit("socket-closed");
    });
  }

  private onPlainConnection(socket: net.Socket): void {
    this.track(socket);
    if (this.draining) {
      socket.destroy();
      return;
    }
    this.sniffing.add(socket);
    const chunks: Buffer[] = [];
    let length = 0;
    const timer = setTimeout(() => socket.destroy(), SNIFF_TIMEOUT_MS);
    timer.unref();
    const cleanup = (): void => {
      this.sniffing.delete(socket);
      clearTimeout(timer);
      socket.off("readable", onReadable);
      socket.off("end", onEnd);
      socket.off("error", onError);
    };
    const onEnd = (): void => {
      cleanup();
      socket.destroy();
    };
    const onError = (err: Error): void => {
      this.logger.debug({ err }, "connection failed before the first request");
      cleanup();
      socket.destroy();
    };
    const onReadable = (): void => {
      for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) {
        chunks.push(chunk);
        length += chunk.length;
      }
      if (length === 0) return;
      const head = Buffer.concat(chunks, length);
      const n = Math.min(head.length, PREFACE.length);
      const matches = head.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (matches && n < PREFACE.length) return; // could still be the preface: wait for more bytes
      cleanup();
      socket.unshift(head);
      if (matches) this.h2.emit("connection", socket);
      else this.h1?.emit("connection", socket);
    };
    socket.on("readable", onReadable);
    socket.on("end", onEnd);
    socket.on("error", onError);
  }

  private onSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.on("error", (err: Error) => this.logger.debug({ err }, "HTTP/2 session failed"));
    const stopKeepalive = this.keepalive(session);
    session.once("close", () => {
      stopKeepalive();
      this.sessions.delete(session);
    });
    if (this.draining) this.closeSession(session);
  }

  private closeSession(session: http2.ServerHttp2Session): void {
    if (session.closed || session.destroyed) return;
    // close() sends GOAWAY and lets open streams finish; the session ends when the last one does.
    session.close();
  }

  private keepalive(session: http2.ServerHttp2Session): () => void {
    const intervalMs = this.options.keepaliveIntervalMs ?? KEEPALIVE_INTERVAL_MS;
    const timeoutMs = this.options.keepaliveTimeoutMs ?? KEEPALIVE_TIMEOUT_MS;
    let deadline: NodeJS.Timeout | undefined;
    const interval = setInterval(() => {
      if (session.destroyed || deadline !== undefined) return;
      deadline = setTimeout(() => {
        this.logger.info({ timeout_ms: timeoutMs }, "HTTP/2 keepalive ping not acknowledged; closing the connection");
        session.destroy();
      }, timeoutMs);
      deadline.unref();
      const sent = session.ping((err) => {
        clearTimeout(deadline);
        deadline = undefined;
        if (err !== null && !session.destroyed) this.logger.debug({ err }, "HTTP/2 keepalive ping failed");
      });
      if (!sent) {
        clearTimeout(deadline);
        deadline = undefined;
      }
    }, intervalMs);
    interval.unref();
    return () => {
      clearInterval(interval);
      clearTimeout(deadline);
    };
  }
}
