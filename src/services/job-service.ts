import { durationMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { JobService } from "../../gen/stackl/v1/jobs_pb.js";
import type { JobDispatcher } from "../agents/job-dispatcher.js";
import type { JobEvents } from "../agents/job-events.js";
import { StacklError } from "../errors.js";
import { WakeLatch } from "../store/change-notifier.js";
import { isTerminalJobState, type JobRepo } from "../store/job-repo.js";
import { jobStateFromProto, jobToProto, logChunkToProto } from "./job-codec.js";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.js";
import { principalOf } from "./principal.js";
import { streamSignal } from "./stream-signal.js";

/** Log chunks read per query while streaming. */
const LOG_BATCH = 256;
/** Longest server-side wait of RunJob. */
export const MAX_RUN_WAIT_MS = 60 * 60_000;

export interface JobServiceDeps {
  repo: JobRepo;
  dispatcher: JobDispatcher;
  events: JobEvents;
}

export function createJobService(deps: JobServiceDeps): Partial<ServiceImpl<typeof JobService>> {
  const { repo, dispatcher } = deps;
  return {
    async runJob(req, ctx) {
      if (req.spec === undefined) throw StacklError.invalid([{ field: "spec", message: "is required" }]);
      if (req.target === "") throw StacklError.invalid([{ field: "target", message: "is required" }]);
      const waitMs = req.wait === undefined ? 0 : durationMs(req.wait);
      if (waitMs < 0 || waitMs > MAX_RUN_WAIT_MS) {
        throw StacklError.invalid([{ field: "wait", message: "must be between 0 and 1h" }]);
      }
      const job = await dispatcher.createJob(
        undefined,
        { target: req.target, spec: req.spec, requestedBy: principalOf(ctx) },
        ctx.signal,
      );
      const final = waitMs > 0 ? await dispatcher.waitForJob(job.id, { timeoutMs: waitMs, signal: ctx.signal }) : job;
      return { job: jobToProto(final) };
    },

    async getJob(req, ctx) {
      const job = await repo.get(requireId(req.id), ctx.signal);
      if (job === undefined) throw StacklError.notFound(`job ${req.id}`);
      return { job: jobToProto(job) };
    },

    async listJobs(req, ctx) {
      const limit = pageSize(req.pageSize);
      const before = decodePageToken(req.pageToken, isCursor);
      const rows = await repo.list({
        states: req.states.map((s, i) => jobStateFromProto(s, `states[${i}]`)),
        target: req.target,
        agent: req.agent,
        stackInstance: req.stackInstance,
        taskId: req.taskId,
        limit: limit + 1,
        before,
        signal: ctx.signal,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        jobs: page.map(jobToProto),
        nextPageToken:
          rows.length > limit && last ? encodePageToken({ createdAt: last.createdAt.toISOString(), id: last.id }) : "",
      };
    },

    async *streamJobLogs(req, ctx) {
      const id = requireId(req.id);
      if (req.afterSeq < 0n) throw StacklError.invalid([{ field: "after_seq", message: "must not be negative" }]);
      const { signal, drained } = streamSignal(ctx);
      let after = Number(req.afterSeq);
      const latch = new WakeLatch();
      const unsubscribe: (() => void)[] = [];
      try {
        if (req.follow) {
          unsubscribe.push(await deps.events.subscribe("logs", id, latch.wake));
          unsubscribe.push(await deps.events.subscribe("changes", id, latch.wake));
        }
        for (;;) {
          // The job is read before its logs: once it is terminal no chunk can be added, so what follows is all.
          const job = await repo.get(id, signal);
          if (job === undefined) throw StacklError.notFound(`job ${id}`);
          for (;;) {
            const rows = await repo.readLogs(id, after, LOG_BATCH, signal);
            for (const r of rows) {
              yield { chunk: logChunkToProto(id, r) };
              after = r.seq;
            }
            if (rows.length < LOG_BATCH) break;
          }
          if (!req.follow || isTerminalJobState(job.state)) return;
          try {
            await latch.wait(signal);
          } catch (err) {
            if (drained()) return; // the server is shutting down: the client resumes from its last seq
            throw err;
          }
        }
      } finally {
        for (const u of unsubscribe) u();
      }
    },

    async cancelJob(req, ctx) {
      const id = requireId(req.id);
      const graceMs = req.grace === undefined ? undefined : durationMs(req.grace);
      if (graceMs !== undefined && (graceMs < 0 || graceMs > 3_600_000)) {
        throw StacklError.invalid([{ field: "grace", message: "must be between 0 and 1h" }]);
      }
      const job = await dispatcher.cancelJob(id, {
        reason: req.reason || `cancelled by ${principalOf(ctx)}`,
        ...(graceMs === undefined ? {} : { graceMs }),
        signal: ctx.signal,
      });
      return { job: jobToProto(job) };
    },

    async retryJob(req, ctx) {
      const job = await dispatcher.retryJob(requireId(req.id), ctx.signal);
      return { job: jobToProto(job) };
    },
  };
}

function requireId(id: string): string {
  if (id === "") throw StacklError.invalid([{ field: "id", message: "is required" }]);
  return id;
}

function isCursor(v: unknown): v is { createdAt: string; id: string } {
  return typeof v === "object" && v !== null && typeof (v as { id?: unknown }).id === "string";
}
