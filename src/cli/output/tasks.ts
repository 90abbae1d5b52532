/** Tasks as `stackl tasks` and `stackl task` print them. */
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { type Task, TaskSchema, TaskState } from "../../../gen/stackl/v1/tasks_pb.js";
import { PLAIN, type Style } from "./style.js";
import { renderFields, renderTable } from "./table.js";
import { ageOf, formatElapsed, formatProtoDuration, formatTimestamp, msOf } from "./time.js";

/** Task states by their CLI names. */
export type TaskStateName = "pending" | "running" | "succeeded" | "failed" | "cancelled" | "timed_out";

export const TASK_STATE_NAMES: readonly TaskStateName[] = [
  "pending",
  "running",
  "succeeded",
  "failed",
  "cancelled",
  "timed_out",
];

const TO_PROTO: Record<TaskStateName, TaskState> = {
  pending: TaskState.PENDING,
  running: TaskState.RUNNING,
  succeeded: TaskState.SUCCEEDED,
  failed: TaskState.FAILED,
  cancelled: TaskState.CANCELLED,
  timed_out: TaskState.TIMED_OUT,
};

export function taskStateToProto(name: TaskStateName): TaskState {
  return TO_PROTO[name];
}

/** `pending`, `running`, … (`unknown` for UNSPECIFIED). */
export function taskStateName(state: TaskState): TaskStateName | "unknown" {
  switch (state) {
    case TaskState.PENDING:
      return "pending";
    case TaskState.RUNNING:
      return "running";
    case TaskState.SUCCEEDED:
      return "succeeded";
    case TaskState.FAILED:
      return "failed";
    case TaskState.CANCELLED:
      return "cancelled";
    case TaskState.TIMED_OUT:
      return "timed_out";
    case TaskState.UNSPECIFIED:
      return "unknown";
    default: {
      const never: never = state;
      void never; // a state added to the API after this client was built
      return "unknown";
    }
  }
}

/** True for succeeded, failed, cancelled and timed_out. */
export function isTerminal(state: TaskState): boolean {
  return (
    state === TaskState.SUCCEEDED ||
    state === TaskState.FAILED ||
    state === TaskState.CANCELLED ||
    state === TaskState.TIMED_OUT
  );
}

export function stateColor(state: TaskState, style: Style): (text: string) => string {
  switch (state) {
    case TaskState.SUCCEEDED:
      return style.green;
    case TaskState.FAILED:
    case TaskState.TIMED_OUT:
      return style.red;
    case TaskState.CANCELLED:
      return style.yellow;
    case TaskState.RUNNING:
      return style.cyan;
    case TaskState.PENDING:
    case TaskState.UNSPECIFIED:
      return (text) => text;
    default: {
      const never: never = state;
      return () => String(never);
    }
  }
}

const ERROR_MAX = 60;

/** ID, TYPE, STATE, ATTEMPTS, AGE, ERROR. */
export function tasksTable(tasks: readonly Task[], now: number, style: Style = PLAIN): string {
  return renderTable(
    tasks,
    [
      { header: "ID", value: (t) => t.id },
      { header: "TYPE", value: (t) => t.type },
      { header: "STATE", value: (t) => taskStateName(t.state), color: (text, t, s) => stateColor(t.state, s)(text) },
      { header: "ATTEMPTS", value: attemptsText, align: "right" },
      { header: "AGE", value: (t) => ageOf(t.createTime, now), align: "right" },
      { header: "ERROR", value: (t) => errorText(t), maxWidth: ERROR_MAX, color: (text, _t, s) => s.red(text) },
    ],
    style,
  );
}

function attemptsText(t: Task): string {
  return t.maxAttempts > 0 ? `${t.attempts}/${t.maxAttempts}` : String(t.attempts);
}

/** `code: message` of a task's error, `` when none. */
export function errorText(t: Task): string {
  if (t.error === undefined || (t.error.code === "" && t.error.message === "")) return "";
  const { code, message } = t.error;
  return code === "" || message === code || message.startsWith(`${code}:`) ? message || code : `${code}: ${message}`;
}

function structText(value: JsonObject | undefined): string {
  if (value === undefined || Object.keys(value).length === 0) return "";
  return JSON.stringify(value);
}

/** Every field of one task, `Key:  value` lines. */
export function taskDetails(t: Task, now: number, style: Style = PLAIN): string {
  const when = (ts: Task["createTime"]): string => {
    const text = formatTimestamp(ts);
    return text === "" ? "" : `${text} (${ageOf(ts, now)} ago)`;
  };
  const took = runTime(t);
  return renderFields(
    [
      ["ID", t.id],
      ["Type", t.type],
      ["State", stateColor(t.state, style)(taskStateName(t.state))],
      ["Attempts", `${attemptsText(t)}${t.epoch > 0n ? ` (epoch ${t.epoch})` : ""}`],
      ["Worker", t.worker],
      ["Requested by", t.requestedBy],
      ["Stack instance", t.stackInstance],
      ["Timeout", formatProtoDuration(t.timeout)],
      ["Created", when(t.createTime)],
      ["Started", when(t.startTime)],
      ["Finished", `${when(t.finishTime)}${took === "" ? "" : `, took ${took}`}`],
      ["Cancel requested", when(t.cancelRequestedTime)],
      ["Input", structText(t.input)],
      ["Result", structText(t.result)],
      ["Error", style.red(errorText(t))],
      ["Jobs", t.jobIds.join(", ")],
    ],
    style,
  );
}

/** How long the last attempt ran (start to finish), `` when it did not finish. */
export function runTime(t: Task): string {
  const start = msOf(t.startTime);
  const finish = msOf(t.finishTime);
  if (start === undefined || finish === undefined) return "";
  return formatElapsed(Math.max(0, finish - start));
}

/**
 * A progress line when `t` differs from `previous` in what a watcher cares about (state, attempt, worker, cancel
 * request); undefined otherwise. `running (attempt 2/5 on worker-1)`, `succeeded in 105ms`, `failed: code: message`.
 */
export function transitionLine(previous: Task | undefined, t: Task, style: Style = PLAIN): string | undefined {
  const changed =
    previous === undefined ||
    previous.state !== t.state ||
    previous.attempts !== t.attempts ||
    previous.worker !== t.worker ||
    (previous.cancelRequestedTime === undefined) !== (t.cancelRequestedTime === undefined);
  if (!changed) return undefined;
  const name = stateColor(t.state, style)(taskStateName(t.state));
  switch (t.state) {
    case TaskState.RUNNING: {
      const worker = t.worker === "" ? "" : ` on ${t.worker}`;
      const cancel = t.cancelRequestedTime === undefined ? "" : ", cancellation requested";
      return `${name} (attempt ${attemptsText(t)}${worker}${cancel})`;
    }
    case TaskState.PENDING:
      return t.attempts > 0 ? `${name} (waiting to retry after attempt ${attemptsText(t)})` : name;
    case TaskState.SUCCEEDED: {
      const took = runTime(t);
      return took === "" ? name : `${name} in ${took}`;
    }
    case TaskState.FAILED:
    case TaskState.CANCELLED:
    case TaskState.TIMED_OUT:
    case TaskState.UNSPECIFIED: {
      const error = errorText(t);
      return error === "" || error === taskStateName(t.state) ? name : `${name}: ${error}`;
    }
    default: {
      const never: never = t.state;
      return String(never);
    }
  }
}

/** Canonical proto JSON of a task. */
export function taskJson(t: Task): unknown {
  return toJson(TaskSchema, t);
}
