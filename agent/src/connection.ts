import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ConnectRequestSchema } from "../../gen/stackl/v1/agents_pb.js";
import { Notifier } from "./notifier.js";

/** A message the agent sends on its stream. */
export type OutgoingMessage = MessageInitShape<typeof ConnectRequestSchema>;

/**
 * The per-stream state of the session: control messages waiting to be sent (accepted, declined, heartbeats; they
 * go before log chunks so liveness is never starved by job output), the jobs reported in this stream's Hello, and
 * the stream's timers. Durable job state (logs, results) lives in the session and survives the connection.
 */
export class Connection {
  /** Aborting it cuts the stream (welcome timeout, close timeout). */
  readonly controller = new AbortController();
  /** Wakes the outbound loop: something may be ready to send. */
  readonly wake = new Notifier();
  readonly control: OutgoingMessage[] = [];
  /** Job ids listed in this stream's Hello (the ones Welcome's resume decisions are about). */
  readonly reported = new Set<string>();
  welcomed = false;
  /** Half-close requested: send what is queued, then end the request stream. */
  closing = false;
  closed = false;
  /** Round-robin position over jobs when picking the next log chunk. */
  rr = 0;
  timers: NodeJS.Timeout[] = [];
  heartbeat: NodeJS.Timeout | undefined;

  constructor(readonly id: number) {}

  push(msg: OutgoingMessage): void {
    this.control.push(msg);
    this.wake.notify();
  }

  abort(reason: Error): void {
    this.controller.abort(reason);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    clearInterval(this.heartbeat);
    this.wake.notify();
  }
}
