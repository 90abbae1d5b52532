// A tiny AgentService.Connect server for agent tests: real HTTP/2 (h2c) on 127.0.0.1, connect-node router, and
// nothing else of the control plane. It accepts a Hello carrying the expected enrollment token (answering with a
// credential) or that credential, persists log chunks in order (acking each, recording any gap), confirms results
// with a LogAck, answers resume decisions like a real server would (resume, from the next seq it lacks), and lets a
// test push offers, cancels and drains, cut connections, revoke the agent, and wait on what it received.
import { once } from "node:events";
import http2 from "node:http2";
import type net from "node:net";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  AgentService,
  type ConnectRequest,
  type ConnectResponse,
  ConnectResponseSchema,
  type Hello,
  type JobResult,
  type ResumeDecisionSchema,
} from "../../gen/stackl/v1/agents_pb.js";
import type { JobSpecSchema, LogChunk } from "../../gen/stackl/v1/jobs_pb.js";

export interface FakeAgentServerOptions {
  /** Enrollment token accepted in Hello. @default "enroll-token" */
  token?: string;
  /** Credential returned on enrollment and accepted afterwards. @default "agent-credential-1" */
  credential?: string;
  /** Welcome.heartbeat_interval. @default 200 */
  heartbeatIntervalMs?: number;
  /** Welcome.max_frame_bytes. @default 1 MiB */
  maxFrameBytes?: number;
  /** Ack persisted log chunks. @default true */
  ackLogs?: boolean;
  /** After a JobResult, send LogAck{seq: last_log_seq} (the result confirmation). @default true */
  confirmResults?: boolean;
  /** Overrides the resume decisions sent in Welcome. @default resume every job from the next seq the server lacks */
  resume?: (hello: Hello, server: FakeAgentServer) => MessageInitShape<typeof ResumeDecisionSchema>[];
}

/** The kinds of message an agent sends. */
export type RequestCase = NonNullable<ConnectRequest["msg"]["case"]>;
/** The payload of a message kind. */
export type RequestValue<T extends RequestCase> = Extract<ConnectRequest["msg"], { case: T }>["value"];

export interface Received {
  /** Stream number (1, 2, … in order of connection). */
  stream: number;
  msg: ConnectRequest;
}

/** A gap the agent produced: a chunk arrived whose seq was ahead of the next expected one. */
export interface LogGap {
  jobId: string;
  expected: bigint;
  got: bigint;
}

class Stream {
  readonly outbox: ConnectResponse[] = [];
  private wake: (() => void) | undefined;
  failure: ConnectError | undefined;
  ended = false;
  hello: Hello | undefined;

  constructor(readonly id: number) {}

  push(msg: ConnectResponse): void {
    this.outbox.push(msg);
    this.poke();
  }

  fail(err: ConnectError): void {
    this.failure = err;
    this.poke();
  }

  end(): void {
    this.ended = true;
    this.poke();
  }

  poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  wait(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }
}

export class FakeAgentServer {
  readonly token: string;
  readonly credential: string;
  /** Every message received, in order. */
  readonly received: Received[] = [];
  /** Persisted chunks per job, in seq order without duplicates. */
  readonly logs = new Map<string, LogChunk[]>();
  /** Results per job (the last one received). */
  readonly results = new Map<string, JobResult>();
  readonly gaps: LogGap[] = [];
  /** Hellos in order. */
  readonly hellos: Hello[] = [];
  revoked = false;
  private readonly options: FakeAgentServerOptions;
  private readonly nextSeq = new Map<string, bigint>();
  private readonly streams = new Map<number, Stream>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly sockets = new Set<net.Socket>();
  private readonly listeners = new Set<() => void>();
  private streamSeq = 0;
  private cursor = 0;
  private server!: http2.Http2Server;
  url = "";

  private constructor(options: FakeAgentServerOptions) {
    this.options = options;
    this.token = options.token ?? "enroll-token";
    this.credential = options.credential ?? "agent-credential-1";
  }

  static async start(options: FakeAgentServerOptions = {}): Promise<FakeAgentServer> {
    const fake = new FakeAgentServer(options);
    const handler = connectNodeAdapter({ routes: (router: ConnectRouter) => fake.routes(router) });
    fake.server = http2.createServer(handler);
    fake.server.on("session", (s: http2.ServerHttp2Session) => {
      fake.sessions.add(s);
      s.once("close", () => fake.sessions.delete(s));
    });
    fake.server.on("connection", (socket: net.Socket) => {
      fake.sockets.add(socket);
      socket.once("close", () => fake.sockets.delete(socket));
    });
    fake.server.listen(0, "127.0.0.1");
    await once(fake.server, "listening");
    const addr = fake.server.address() as net.AddressInfo;
    fake.url = `http://127.0.0.1:${addr.port}`;
    return fake;
  }

  /** Number of streams opened so far. */
  get streamCount(): number {
    return this.streamSeq;
  }

  /** The newest stream that is still open, if any. */
  private get live(): Stream | undefined {
    let latest: Stream | undefined;
    for (const s of this.streams.values()) if (!s.ended && s.hello) latest = s;
    return latest;
  }

  /** Sends a message on the newest open stream. Throws when no agent is connected. */
  send(msg: MessageInitShape<typeof ConnectResponseSchema>): void {
    const s = this.live;
    if (!s) throw new Error("fake server: no agent connected");
    s.push(create(ConnectResponseSchema, msg));
  }

  offer(
    jobId: string,
    spec: MessageInitShape<typeof JobSpecSchema>,
    opts: { epoch?: bigint; nextLogSeq?: bigint; deadlineMs?: number } = {},
  ): void {
    const epoch = opts.epoch ?? 1n;
    if (!this.nextSeq.has(jobId) || opts.nextLogSeq !== undefined) this.nextSeq.set(jobId, opts.nextLogSeq ?? 1n);
    this.send({
      msg: {
        case: "jobOffer",
        value: {
          jobId,
          epoch,
          spec,
          nextLogSeq: opts.nextLogSeq ?? 0n,
          jobToken: `job-token-${jobId}`,
          deadline: opts.deadlineMs === undefined ? undefined : timestampFromMs(opts.deadlineMs),
        },
      },
    });
  }

  cancel(jobId: string, epoch = 1n, graceMs?: number, reason = "test"): void {
    this.send({
      msg: {
        case: "jobCancel",
        value: { jobId, epoch, reason, grace: graceMs === undefined ? undefined : durationFromMs(graceMs) },
      },
    });
  }

  drain(reason = "test drain"): void {
    this.send({ msg: { case: "drain", value: { reason } } });
  }

  /** Destroys every HTTP/2 session and socket: the agent sees its connection die. */
  dropConnections(): void {
    for (const s of this.sessions) s.destroy();
    for (const socket of this.sockets) socket.destroy();
    for (const s of this.streams.values()) s.end();
  }

  /** From now on the credential is refused (Unauthenticated), and open streams are cut. */
  revoke(): void {
    this.revoked = true;
    for (const s of this.streams.values()) s.fail(new ConnectError("agent revoked", Code.Unauthenticated));
  }

  /** Turns log acks on or off; turning them on acks everything persisted so far. */
  setAckLogs(on: boolean): void {
    this.options.ackLogs = on;
    if (!on) return;
    for (const [jobId, next] of this.nextSeq) {
      if (next > 1n && this.live) this.send({ msg: { case: "logAck", value: { jobId, seq: next - 1n } } });
    }
  }

  /** Log bytes of a job as one string. */
  logText(jobId: string): string {
    return Buffer.concat((this.logs.get(jobId) ?? []).map((c) => c.data)).toString("utf8");
  }

  /** Resolves with the first message (after the last one returned by `next`) matching `pred`. */
  async next<T extends RequestCase>(
    kind: T,
    pred: (value: RequestValue<T>, r: Received) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<RequestValue<T>> {
    let found: { value: RequestValue<T> } | undefined;
    await this.waitFor(
      () => {
        while (this.cursor < this.received.length) {
          const r = this.received[this.cursor++]!;
          if (r.msg.msg.case === kind) {
            const value = r.msg.msg.value as unknown as RequestValue<T>;
            if (pred(value, r)) {
              found = { value };
              return true;
            }
          }
        }
        return false;
      },
      timeoutMs,
      `a ${kind} message`,
    );
    return found!.value;
  }

  /** Resolves once `cond()` is true (re-checked on every received message); rejects after `timeoutMs`. */
  waitFor(cond: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        let ok = false;
        try {
          ok = cond();
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (ok) {
          done();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`fake agent server: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
    });
  }

  /** Waits for the result of a job. */
  async result(jobId: string, timeoutMs = 20_000): Promise<JobResult> {
    await this.waitFor(() => this.results.has(jobId), timeoutMs, `the result of ${jobId}`);
    return this.results.get(jobId)!;
  }

  async close(): Promise<void> {
    for (const s of this.streams.values()) s.end();
    for (const s of this.sessions) s.destroy();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  private routes(router: ConnectRouter): void {
    router.service(AgentService, {
      connect: (requests, ctx) => this.connect(requests, ctx.signal),
      listAgents: () => Promise.reject(new ConnectError("fake", Code.Unimplemented)),
      getAgent: () => Promise.reject(new ConnectError("fake", Code.Unimplemented)),
      drainAgent: () => Promise.reject(new ConnectError("fake", Code.Unimplemented)),
      createEnrollmentToken: () => Promise.reject(new ConnectError("fake", Code.Unimplemented)),
      revokeAgent: () => Promise.reject(new ConnectError("fake", Code.Unimplemented)),
    });
  }

  private async *connect(
    requests: AsyncIterable<ConnectRequest>,
    signal: AbortSignal,
  ): AsyncGenerator<ConnectResponse> {
    const stream = new Stream(++this.streamSeq);
    this.streams.set(stream.id, stream);
    signal.addEventListener("abort", () => stream.end(), { once: true });
    const reader = (async () => {
      try {
        for await (const req of requests) {
          this.received.push({ stream: stream.id, msg: req });
          this.handle(stream, req);
          this.notify();
        }
      } catch {
        // the agent went away
      }
      stream.end();
      this.notify();
    })();
    try {
      for (;;) {
        const wait = stream.wait();
        if (stream.failure) throw stream.failure;
        const msg = stream.outbox.shift();
        if (msg) {
          yield msg;
          continue;
        }
        if (stream.ended) return;
        await wait;
      }
    } finally {
      stream.end();
      void reader;
    }
  }

  private handle(stream: Stream, req: ConnectRequest): void {
    const m = req.msg;
    switch (m.case) {
      case "hello": {
        const hello = m.value;
        this.hellos.push(hello);
        const cred = hello.credential;
        let issue = "";
        if (cred.case === "enrollmentToken" && cred.value === this.token) {
          issue = this.credential;
        } else if (!(cred.case === "agentCredential" && cred.value === this.credential) || this.revoked) {
          stream.fail(new ConnectError("invalid agent credential or enrollment token", Code.Unauthenticated));
          return;
        }
        stream.hello = hello;
        const decisions =
          this.options.resume?.(hello, this) ??
          hello.jobsInFlight.map((j) => ({
            jobId: j.jobId,
            epoch: j.epoch,
            resume: true,
            nextLogSeq: this.nextSeq.get(j.jobId) ?? (j.nextLogSeq > 0n ? j.nextLogSeq : 1n),
          }));
        for (const d of decisions) {
          if (d.jobId && d.nextLogSeq && !this.nextSeq.has(d.jobId)) this.nextSeq.set(d.jobId, d.nextLogSeq);
        }
        stream.push(
          create(ConnectResponseSchema, {
            msg: {
              case: "welcome",
              value: {
                sessionId: `session-${stream.id}`,
                heartbeatInterval: durationFromMs(this.options.heartbeatIntervalMs ?? 200),
                disconnectAfter: durationFromMs(3 * (this.options.heartbeatIntervalMs ?? 200)),
                agentCredential: issue,
                resume: decisions,
                maxFrameBytes: this.options.maxFrameBytes ?? 1024 * 1024,
              },
            },
          }),
        );
        return;
      }
      case "logChunk": {
        const chunk = m.value;
        const expected = this.nextSeq.get(chunk.jobId) ?? 1n;
        if (chunk.seq === expected) {
          const list = this.logs.get(chunk.jobId) ?? [];
          list.push(chunk);
          this.logs.set(chunk.jobId, list);
          this.nextSeq.set(chunk.jobId, expected + 1n);
        } else if (chunk.seq > expected) {
          this.gaps.push({ jobId: chunk.jobId, expected, got: chunk.seq });
          return;
        }
        if (this.options.ackLogs ?? true) {
          const persisted = (this.nextSeq.get(chunk.jobId) ?? 1n) - 1n;
          stream.push(
            create(ConnectResponseSchema, { msg: { case: "logAck", value: { jobId: chunk.jobId, seq: persisted } } }),
          );
        }
        return;
      }
      case "jobResult": {
        const result = m.value;
        this.results.set(result.jobId, result);
        if (this.options.confirmResults ?? true) {
          stream.push(
            create(ConnectResponseSchema, {
              msg: { case: "logAck", value: { jobId: result.jobId, seq: result.lastLogSeq } },
            }),
          );
        }
        return;
      }
      case "heartbeat":
      case "jobAccepted":
      case "jobDeclined":
      case undefined:
        return;
      default: {
        const unreachable: never = m;
        throw new Error(`unknown message ${String(unreachable)}`);
      }
    }
  }
}
