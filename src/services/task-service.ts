import { durationMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { TaskService } from "../../gen/stackl/v1/tasks_pb.js";
import type { Bus } from "../bus/bus.js";
import { StacklError } from "../errors.js";
import { SystemTaskType } from "../jobs/system-tasks.js";
import { waitForTask, watchTask } from "../jobs/task-waiter.js";
import { TASK_CANCEL_SUBJECT } from "../jobs/worker-pool.js";
import type { ChangeNotifier } from "../store/change-notifier.js";
import type { TaskRepo } from "../store/task-repo.js";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.js";
import { principalOf } from "./principal.js";
import { streamSignal } from "./stream-signal.js";
import { taskStateFromProto, taskToProto } from "./task-codec.js";

export interface TaskServiceDeps {
  repo: TaskRepo;
  notifier: ChangeNotifier;
  bus: Bus;
}

export function createTaskService(deps: TaskServiceDeps): Partial<ServiceImpl<typeof TaskService>> {
  const { repo } = deps;
  return {
    async runTask(req, ctx) {
      const known: readonly string[] = Object.values(SystemTaskType);
      if (!known.includes(req.type)) {
        throw StacklError.invalid([
          { field: "type", message: `only built-in task types can be run directly: ${known.join(", ")}` },
        ]);
      }
      const task = await repo.create(
        {
          type: req.type,
          queue: req.queue || "default",
          input: req.input ?? {},
          requestedBy: principalOf(ctx),
          maxAttempts: req.maxAttempts || 5,
        },
        undefined,
        ctx.signal,
      );
      const waitMs = req.wait === undefined ? 0 : durationMs(req.wait);
      const final = waitMs > 0 ? await waitForTask(deps, task.id, waitMs, ctx.signal) : task;
      return { task: taskToProto(final) };
    },

    async getTask(req, ctx) {
      const task = await repo.get(requireId(req.id), ctx.signal);
      if (task === undefined) throw StacklError.notFound(`task ${req.id}`);
      return { task: taskToProto(task) };
    },

    async listTasks(req, ctx) {
      const limit = pageSize(req.pageSize);
      const before = decodePageToken(req.pageToken, isCursor);
      const rows = await repo.list({
        states: req.states.map((s, i) => taskStateFromProto(s, `states[${i}]`)),
        type: req.type,
        stackInstance: req.stackInstance,
        limit: limit + 1,
        before,
        signal: ctx.signal,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        tasks: page.map((t) => taskToProto(t)),
        nextPageToken:
          rows.length > limit && last ? encodePageToken({ createdAt: last.createdAt.toISOString(), id: last.id }) : "",
      };
    },

    async *watchTask(req, ctx) {
      const stream = streamSignal(ctx);
      try {
        for await (const task of watchTask(deps, requireId(req.id), stream.signal)) yield { task: taskToProto(task) };
      } catch (err) {
        if (!stream.drained()) throw err;
      }
    },

    async cancelTask(req, ctx) {
      const id = requireId(req.id);
      const reason = req.reason || `cancelled by ${principalOf(ctx)}`;
      const task = await repo.requestCancel(id, reason, ctx.signal);
      if (task === undefined) throw StacklError.notFound(`task ${id}`);
      if (task.state === "running") deps.bus.publish(`${TASK_CANCEL_SUBJECT}.${id}`, new Uint8Array(0));
      const waitMs = req.wait === undefined ? 0 : durationMs(req.wait);
      const final = waitMs > 0 ? await waitForTask(deps, id, waitMs, ctx.signal) : task;
      return { task: taskToProto(final) };
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
