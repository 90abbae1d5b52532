// Scratch: documents + tasks (with workers) in process, for manual CLI checks until wiring lands. Not committed.
import { durationMs } from "@bufbuild/protobuf/wkt";
import pino from "pino";
import { DocumentService } from "../gen/stackl/v1/documents_pb.js";
import { TaskService } from "../gen/stackl/v1/tasks_pb.js";
import { MemoryBus } from "../src/bus/memory-bus.js";
import { OutboxRelay } from "../src/jobs/outbox-relay.js";
import { registerSystemTasks } from "../src/jobs/system-tasks.js";
import { TaskRegistry } from "../src/jobs/task-handler.js";
import { waitForTask } from "../src/jobs/task-waiter.js";
import { WorkerPool } from "../src/jobs/worker-pool.js";
import { createDocumentService } from "../src/services/document-service.js";
import { taskToProto } from "../src/services/task-codec.js";
import { createTaskService } from "../src/services/task-service.js";
import { ChangeNotifier } from "../src/store/change-notifier.js";
import { DocumentRepo } from "../src/store/document-repo.js";
import { openDb } from "../src/store/open-db.js";
import { TaskRepo } from "../src/store/task-repo.js";
import { startTestServer } from "../test/support/server.js";

const logger = pino({ level: "warn" });
const db = await openDb({ memory: true });
const notifier = new ChangeNotifier(db);
const bus = new MemoryBus({ logger });
const repo = new TaskRepo(db);
const life = new AbortController();
new OutboxRelay({ repo, bus, notifier, logger }).start(life.signal);
const pool = new WorkerPool({ bus, repo, registry: registerSystemTasks(new TaskRegistry()), logger }, {});
await pool.start();
const tasks = createTaskService({ repo, notifier, bus });
const srv = await startTestServer({
  env: { STACKL_PORT: process.argv[2] ?? "0" },
  register: (router) => {
    router.service(DocumentService, createDocumentService({ repo: new DocumentRepo(db), notifier }) as never);
    router.service(TaskService, {
      ...tasks,
      async runTask(req, ctx) {
        const t = await repo.create({ type: req.type, input: req.input ?? {}, requestedBy: "scratch", queue: req.queue || undefined, maxAttempts: req.maxAttempts || undefined });
        const waitMs = req.wait === undefined ? 0 : durationMs(req.wait);
        return { task: taskToProto(waitMs > 0 ? await waitForTask({ repo, notifier }, t.id, waitMs, ctx.signal) : t) };
      },
    } as never);
  },
});
console.log(srv.url);
