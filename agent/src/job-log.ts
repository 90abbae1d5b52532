import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type LogChunk, LogChunkSchema, type LogStream } from "../../gen/stackl/v1/jobs_pb.js";

/**
 * The sequenced log of one job on the agent.
 *
 * Chunks get numbers 1, 2, 3, … (or from the offer's `next_log_seq`), contiguous for the life of the job, across
 * reconnects. A chunk stays in memory until the server acks it (LogAck: "persisted up to seq"), so after a
 * reconnect everything unacked is sent again from the sequence number the server asks for. Memory is bounded: when
 * the unacked bytes reach `maxBytes`, `full` turns true and writers wait (`waitForSpace`) — the job's stdout pipe
 * is paused, so the process blocks on write instead of the agent buffering without bound.
 */

/** Largest chunk the agent sends (well below the server's 1 MiB frame limit). */
export const MAX_CHUNK_BYTES = 64 * 1024;
/** Unacked log bytes one job may hold before its output is paused. */
export const MAX_UNACKED_LOG_BYTES = 4 * 1024 * 1024;

interface Entry {
  chunk: LogChunk;
  /** Sent on some connection at least once: its contents are frozen (the server may have persisted it). */
  everSent: boolean;
}

export interface JobLogOptions {
  /** @default MAX_UNACKED_LOG_BYTES */
  maxBytes?: number;
  /** @default MAX_CHUNK_BYTES */
  maxChunkBytes?: number;
}

export class JobLog {
  private readonly entries: Entry[] = [];
  private next: bigint;
  private bytes = 0;
  /** Index into `entries` of the next chunk to send on the current connection. */
  private sendIndex = 0;
  private readonly maxBytes: number;
  private maxChunkBytes: number;
  private spaceWaiters: Array<() => void> = [];
  private disposed = false;

  constructor(
    readonly jobId: string,
    readonly epoch: bigint,
    firstSeq: bigint,
    options: JobLogOptions = {},
  ) {
    this.next = firstSeq > 0n ? firstSeq : 1n;
    this.maxBytes = options.maxBytes ?? MAX_UNACKED_LOG_BYTES;
    this.maxChunkBytes = options.maxChunkBytes ?? MAX_CHUNK_BYTES;
  }

  /** The sequence number the next new chunk gets. */
  get nextSeq(): bigint {
    return this.next;
  }

  /** The number of the last chunk produced (nextSeq - 1; 0 when none). */
  get lastSeq(): bigint {
    return this.next - 1n;
  }

  /** The first sequence number not yet acked (what the agent sends first after a reconnect). */
  get firstUnackedSeq(): bigint {
    return this.entries[0]?.chunk.seq ?? this.next;
  }

  /** Every chunk produced so far has been acked. */
  get allAcked(): boolean {
    return this.entries.length === 0;
  }

  /** Unacked bytes held. */
  get bufferedBytes(): number {
    return this.bytes;
  }

  /** At or over the byte limit: writers should wait for `waitForSpace()`. */
  get full(): boolean {
    return this.bytes >= this.maxBytes;
  }

  /** Caps chunk size (from Welcome.max_frame_bytes). */
  limitChunkBytes(max: number): void {
    this.maxChunkBytes = Math.max(1024, Math.min(MAX_CHUNK_BYTES, max));
  }

  /**
   * Appends output, split into chunks of at most maxChunkBytes. Small writes are merged into the last chunk while
   * it has never been sent, so a chatty process does not become one message per line.
   */
  append(stream: LogStream, data: Uint8Array, now: Date = new Date()): void {
    if (this.disposed || data.length === 0) return;
    let offset = 0;
    const last = this.entries[this.entries.length - 1];
    if (
      last !== undefined &&
      !last.everSent &&
      last.chunk.stream === stream &&
      last.chunk.data.length < this.maxChunkBytes
    ) {
      const take = Math.min(this.maxChunkBytes - last.chunk.data.length, data.length);
      last.chunk.data = Buffer.concat([last.chunk.data, data.subarray(0, take)]);
      this.bytes += take;
      offset = take;
    }
    while (offset < data.length) {
      const piece = data.slice(offset, offset + this.maxChunkBytes);
      offset += piece.length;
      const chunk = create(LogChunkSchema, {
        jobId: this.jobId,
        seq: this.next,
        stream,
        data: piece,
        time: timestampFromDate(now),
        epoch: this.epoch,
      });
      this.next += 1n;
      this.entries.push({ chunk, everSent: false });
      this.bytes += piece.length;
    }
  }

  /** The next chunk to send on the current connection, or undefined. Marks it sent. */
  takeUnsent(): LogChunk | undefined {
    const entry = this.entries[this.sendIndex];
    if (!entry) return undefined;
    this.sendIndex++;
    entry.everSent = true;
    return entry.chunk;
  }

  /** There are chunks not yet sent on the current connection. */
  get hasUnsent(): boolean {
    return this.sendIndex < this.entries.length;
  }

  /** The server persisted everything up to `seq`: drop those chunks and wake writers waiting for space. */
  ack(seq: bigint): void {
    let n = 0;
    while (n < this.entries.length && this.entries[n]!.chunk.seq <= seq) {
      this.bytes -= this.entries[n]!.chunk.data.length;
      n++;
    }
    if (n === 0) return;
    this.entries.splice(0, n);
    this.sendIndex = Math.max(0, this.sendIndex - n);
    this.wakeWriters();
  }

  /**
   * A new connection: everything unacked is unsent again. `serverNextSeq` (from ResumeDecision; 0 = unknown) is
   * the first number the server does not have: chunks below it count as acked, and when the agent holds nothing
   * numbering continues from it (after an agent restart the agent does not know it). Returns true when the server
   * asks for chunks the agent no longer holds (a gap it cannot fill).
   */
  rewind(serverNextSeq: bigint): boolean {
    this.sendIndex = 0;
    if (serverNextSeq <= 0n) return false;
    this.ack(serverNextSeq - 1n);
    if (this.entries.length === 0) {
      // Nothing held: numbering continues where the server is, so its log stays contiguous either way.
      const gap = serverNextSeq < this.next;
      this.next = serverNextSeq;
      return gap;
    }
    return serverNextSeq < this.firstUnackedSeq;
  }

  /** Resolves when there is room again (or the log is disposed). */
  waitForSpace(): Promise<void> {
    if (!this.full || this.disposed) return Promise.resolve();
    return new Promise((resolve) => {
      this.spaceWaiters.push(resolve);
    });
  }

  /** Drops everything and releases writers (the job is abandoned). */
  dispose(): void {
    this.disposed = true;
    this.entries.length = 0;
    this.bytes = 0;
    this.sendIndex = 0;
    this.wakeWriters(true);
  }

  private wakeWriters(all = false): void {
    if (!all && this.full) return;
    const waiters = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const wake of waiters) wake();
  }
}
