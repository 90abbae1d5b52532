import { StacklError } from "../errors.js";
import { type ChangeNotifier, WakeLatch } from "../store/change-notifier.js";
import { TASK_CHANGES_CHANNEL, type TaskRepo, type TaskRow, TERMINAL_TASK_STATES } from "../store/task-repo.js";

/**
 * Yields the task now and after every change (woken by NOTIFY, never by polling) until it is terminal or `signal`
 * aborts. Changes that happen between two reads are coalesced: the latest state is yielded.
 */
export async function* watchTask(
  deps: { repo: TaskRepo; notifier: ChangeNotifier },
  id: string,
  signal: AbortSignal,
): AsyncGenerator<TaskRow> {
  const latch = new WakeLatch();
  const unsubscribe = await deps.notifier.subscribe(TASK_CHANGES_CHANNEL, latch.wake);
  try {
    let last = "";
    for (;;) {
      const task = await deps.repo.get(id, signal);
      if (task === undefined) throw StacklError.notFound(`task ${id}`);
      const stamp = `${task.state}|${task.epoch}|${task.updatedAt.getTime()}|${task.attempts}`;
      if (stamp !== last) {
        last = stamp;
        yield task;
      }
      if (TERMINAL_TASK_STATES.includes(task.state)) return;
      await latch.wait(signal);
    }
  } finally {
    unsubscribe();
  }
}

/** The task once terminal, or as it is when `waitMs` passes (or `signal` aborts). */
export async function waitForTask(
  deps: { repo: TaskRepo; notifier: ChangeNotifier },
  id: string,
  waitMs: number,
  signal: AbortSignal,
): Promise<TaskRow> {
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(waitMs)]);
  let latest: TaskRow | undefined;
  try {
    for await (const t of watchTask(deps, id, deadline)) latest = t;
  } catch (err) {
    // Only the wait's own deadline is swallowed: the task is returned as it is now.
    if (signal.aborted || !deadline.aborted) throw err;
  }
  if (latest !== undefined && TERMINAL_TASK_STATES.includes(latest.state)) return latest;
  const now = await deps.repo.get(id, signal);
  if (now === undefined) throw StacklError.notFound(`task ${id}`);
  return now;
}
