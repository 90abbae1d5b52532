import { ErrorCode, StacklError } from "../errors.js";
import type { TaskHandler, TaskRegistry } from "./task-handler.js";

/** Task types built into every worker: diagnostics used by `stackl task run`, tests and benchmarks. */
export const SystemTaskType = {
  /**
   * Waits `input.ms` (default 0) honouring cancellation, then succeeds with `{ slept_ms }` and records the effect
   * `system.sleep:<task id>`. `input.fail: "retryable" | "terminal"` makes it fail instead.
   */
  Sleep: "system.sleep",
} as const;

const sleepTask: TaskHandler = async ({ task, signal }) => {
  const ms = typeof task.input.ms === "number" && task.input.ms > 0 ? task.input.ms : 0;
  await new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
  const fail = task.input.fail;
  if (fail === "terminal") throw new StacklError(ErrorCode.FailedPrecondition, "system.sleep asked to fail (terminal)");
  if (fail === "retryable") {
    throw new StacklError(ErrorCode.Unavailable, `system.sleep asked to fail (attempt ${task.attempts})`);
  }
  return { result: { slept_ms: ms }, effects: [`${SystemTaskType.Sleep}:${task.id}`] };
};

export function registerSystemTasks(registry: TaskRegistry): TaskRegistry {
  return registry.register(SystemTaskType.Sleep, sleepTask);
}
