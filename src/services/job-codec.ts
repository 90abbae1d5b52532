import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Job,
  JobSchema,
  JobState,
  type LogChunk,
  LogChunkSchema,
  LogStream,
} from "../../gen/stackl/v1/jobs_pb.js";
import { specFromJson } from "../agents/job-spec.js";
import { StacklError } from "../errors.js";
import type { JobLogRow, JobRow, JobState as StoredJobState } from "../store/job-repo.js";

export const JOB_STATE_TO_PROTO: Record<StoredJobState, JobState> = {
  pending: JobState.PENDING,
  offered: JobState.OFFERED,
  running: JobState.RUNNING,
  succeeded: JobState.SUCCEEDED,
  failed: JobState.FAILED,
  cancelled: JobState.CANCELLED,
  timed_out: JobState.TIMED_OUT,
};

export function jobStateFromProto(state: JobState, field: string): StoredJobState {
  const found = Object.entries(JOB_STATE_TO_PROTO).find(([, v]) => v === state);
  if (found === undefined) throw StacklError.invalid([{ field, message: `unknown job state ${state}` }]);
  return found[0] as StoredJobState;
}

const ts = (d: Date | null) => (d === null ? undefined : timestampFromDate(d));

export function jobToProto(j: JobRow): Job {
  return create(JobSchema, {
    id: j.id,
    state: JOB_STATE_TO_PROTO[j.state],
    target: j.target,
    agent: j.agent ?? "",
    spec: specFromJson(j.spec),
    epoch: BigInt(j.epoch),
    attempt: j.attempt,
    outputs: j.outputs ?? undefined,
    error:
      j.error === null ? undefined : { code: j.error.code, message: j.error.message, retryable: j.error.retryable },
    exitCode: j.exitCode ?? 0,
    createTime: ts(j.createdAt),
    startTime: ts(j.startedAt),
    finishTime: ts(j.finishedAt),
    updateTime: ts(j.updatedAt),
    taskId: j.taskId ?? "",
    stepId: j.stepId ?? "",
    lastLogSeq: BigInt(j.lastLogSeq),
    cancelRequestedTime: ts(j.cancelRequestedAt),
  });
}

const STREAMS: readonly LogStream[] = [LogStream.STDOUT, LogStream.STDERR, LogStream.SYSTEM];

export function logChunkToProto(jobId: string, r: JobLogRow): LogChunk {
  return create(LogChunkSchema, {
    jobId,
    seq: BigInt(r.seq),
    stream: STREAMS.includes(r.stream) ? (r.stream as LogStream) : LogStream.UNSPECIFIED,
    data: r.data,
    time: timestampFromDate(r.time),
    epoch: BigInt(r.epoch),
  });
}
