/**
 * The fake agent of bench/e2e.ts's raw baseline: an in-process AgentService.Connect client on its own HTTP/2
 * connection (like a real agent) that sends Hello, records when each JobOffer arrives (wall clock, sub-millisecond)
 * and answers JobResult(SUCCEEDED) at once.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { AgentService, type ConnectRequestSchema, JobOutcome } from "../../gen/stackl/v1/agents_pb.js";

type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;

export class FakeAgent {
  /** job id → wall-clock ms (fractional) the offer was received. */
  readonly received = new Map<string, number>();
  private readonly queue: Outgoing[] = [];
  private wake: (() => void) | undefined;
  private readonly abort = new AbortController();
  private readonly manager: Http2SessionManager;
  readonly welcomed: Promise<void>;

  constructor(
    url: string,
    readonly name: string,
    capacity: number,
    private readonly now: () => number,
  ) {
    this.manager = new Http2SessionManager(url, { pingIdleConnection: false });
    const client = createClient(AgentService, createGrpcTransport({ baseUrl: url, sessionManager: this.manager }));
    this.queue.push({
      msg: { case: "hello", value: { name, pool: "raw", handlers: ["mock"], maxConcurrentJobs: capacity } },
    });
    let welcome!: () => void;
    let fail!: (err: unknown) => void;
    this.welcomed = new Promise((resolve, reject) => {
      welcome = resolve;
      fail = reject;
    });
    this.welcomed.catch(() => undefined);
    void (async () => {
      try {
        for await (const res of client.connect(this.outbound(), { signal: this.abort.signal })) {
          const m = res.msg;
          if (m.case === "welcome") welcome();
          else if (m.case === "jobOffer") {
            this.received.set(m.value.jobId, this.now());
            this.send({
              msg: {
                case: "jobResult",
                value: { jobId: m.value.jobId, epoch: m.value.epoch, outcome: JobOutcome.SUCCEEDED },
              },
            });
          }
        }
        fail(new Error("stream ended"));
      } catch (err) {
        fail(err);
      }
    })();
  }

  private send(msg: Outgoing): void {
    this.queue.push(msg);
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async *outbound(): AsyncGenerator<Outgoing> {
    while (!this.abort.signal.aborted) {
      const next = this.queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  close(): void {
    this.abort.abort();
    const w = this.wake;
    this.wake = undefined;
    w?.();
    this.manager.abort();
  }
}
