import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Task, TaskSchema, TaskState } from "../../gen/stackl/v1/tasks_pb.js";
import type { TaskState as StoredTaskState, TaskRow } from "../store/task-repo.js";

export const TASK_STATE_TO_PROTO: Record<StoredTaskState, TaskState> = {
  pending: TaskState.PENDING,
  running: TaskState.RUNNING,
  succeeded: TaskState.SUCCEEDED,
  failed: TaskState.FAILED,
  cancelled: TaskState.CANCELLED,
  timed_out: TaskState.TIMED_OUT,
};

export function taskStateFromProto(state: TaskState, field: string): StoredTaskState {
  const found = Object.entries(TASK_STATE_TO_PROTO).find(([, v]) => v === state);
  if (found === undefined) throw new RangeError(`${field}: unknown task state ${state}`);
  return found[0] as StoredTaskState;
}

export function taskToProto(t: TaskRow, jobIds: string[] = []): Task {
  const ts = (d: Date | null) => (d === null ? undefined : timestampFromDate(d));
  return create(TaskSchema, {
    id: t.id,
    type: t.type,
    state: TASK_STATE_TO_PROTO[t.state],
    input: t.input,
    result: t.result ?? undefined,
    error:
      t.error === null
        ? undefined
        : { code: t.error.code, message: t.error.message, retryable: t.error.retryable, field: t.error.field ?? "" },
    attempts: t.attempts,
    maxAttempts: t.maxAttempts,
    epoch: BigInt(t.epoch),
    timeout: durationFromMs(t.timeoutMs),
    createTime: ts(t.createdAt),
    startTime: ts(t.startedAt),
    finishTime: ts(t.finishedAt),
    updateTime: ts(t.updatedAt),
    requestedBy: t.requestedBy,
    stackInstance: t.stackInstance ?? "",
    jobIds,
    cancelRequestedTime: ts(t.cancelRequestedAt),
    worker: t.worker ?? "",
  });
}
