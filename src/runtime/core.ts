import type { Bus } from "../bus/bus.js";
import { openBus } from "../bus/open-bus.js";
import type { Config } from "../config/config.js";
import { loadTaskConfig, type TaskConfig } from "../config/task-config.js";
import { OutboxRelay } from "../jobs/outbox-relay.js";
import { Sweeper } from "../jobs/sweeper.js";
import { registerSystemTasks } from "../jobs/system-tasks.js";
import { TaskRegistry } from "../jobs/task-handler.js";
import { WorkerPool } from "../jobs/worker-pool.js";
import type { Logger } from "../observability/logger.js";
import { ChangeNotifier } from "../store/change-notifier.js";
import type { Db } from "../store/db.js";
import { DecisionRepo } from "../store/decision-repo.js";
import { DocumentRepo } from "../store/document-repo.js";
import { openDb } from "../store/open-db.js";
import { StackRepo } from "../store/stack-repo.js";
import { TaskRepo } from "../store/task-repo.js";

/** The parts every STACKL process shares: store, bus, repositories, and the task system's background loops. */
export interface Core {
  readonly config: Config;
  readonly tasks: TaskConfig;
  readonly db: Db;
  readonly bus: Bus;
  readonly notifier: ChangeNotifier;
  readonly documentRepo: DocumentRepo;
  readonly taskRepo: TaskRepo;
  readonly stackRepo: StackRepo;
  readonly decisionRepo: DecisionRepo;
  readonly registry: TaskRegistry;
  readonly logger: Logger;
  /** Starts a worker pool on the configured queue in this process. */
  startWorkers(concurrency: number): Promise<WorkerPool>;
  /** Stops loops and workers (workers get `graceMs`), then closes the bus and the store. Idempotent. */
  close(graceMs: number): Promise<void>;
}

export async function openCore(config: Config, logger: Logger, signal: AbortSignal): Promise<Core> {
  const tasks = loadTaskConfig();
  const db = await openDb({
    url: config.databaseUrl,
    dataDir: config.databaseUrl === undefined ? config.dataDir : undefined,
    logger,
    signal,
  });
  let bus: Bus;
  try {
    bus = await openBus({ url: config.natsUrl, logger, signal });
  } catch (err) {
    await db.close();
    throw err;
  }
  const notifier = new ChangeNotifier(db);
  const taskRepo = new TaskRepo(db);
  const registry = registerSystemTasks(new TaskRegistry());
  const loops = new AbortController();
  const relay = new OutboxRelay({ repo: taskRepo, bus, notifier, logger: logger.child({ component: "outbox-relay" }) });
  const sweeper = new Sweeper(
    { repo: taskRepo, logger: logger.child({ component: "sweeper" }) },
    { periodMs: tasks.sweepPeriodMs, republishAfterMs: tasks.republishAfterMs },
  );
  relay.start(loops.signal);
  sweeper.start(loops.signal);
  const pools: WorkerPool[] = [];
  let closing: Promise<void> | undefined;

  return {
    config,
    tasks,
    db,
    bus,
    notifier,
    documentRepo: new DocumentRepo(db),
    taskRepo,
    stackRepo: new StackRepo(db),
    decisionRepo: new DecisionRepo(db),
    registry,
    logger,
    async startWorkers(concurrency) {
      const pool = new WorkerPool(
        { bus, repo: taskRepo, registry, logger: logger.child({ component: "worker-pool" }) },
        {
          queue: tasks.queue,
          concurrency,
          leaseMs: tasks.leaseMs,
          maxDeliver: tasks.maxDeliver,
          retryBaseMs: tasks.retryBaseMs,
          retryCapMs: tasks.retryCapMs,
          name: `${config.replicaName}:${process.pid}`,
        },
      );
      await pool.start();
      pools.push(pool);
      return pool;
    },
    close(graceMs) {
      closing ??= (async () => {
        await Promise.all(pools.map((p) => p.stop(graceMs)));
        loops.abort();
        await Promise.all([relay.stopped(), sweeper.stopped()]);
        await notifier.close().catch((err) => logger.warn({ err }, "closing listeners failed"));
        await bus.close();
        await db.close();
      })();
      return closing;
    },
  };
}
