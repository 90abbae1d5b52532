import { type AgentsConfig, loadAgentsConfig } from "../agents/agents-config.js";
import { JobDispatcher } from "../agents/job-dispatcher.js";
import { JobEvents } from "../agents/job-events.js";
import { JobSweeper } from "../agents/job-sweeper.js";
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
import { AgentStepDispatcher } from "../stacks/agent-step-dispatcher.js";
import { createStackRunHandler, STACK_RUN_TASK } from "../stacks/stack-run.js";
import { AgentRepo } from "../store/agent-repo.js";
import { ChangeNotifier } from "../store/change-notifier.js";
import type { Db } from "../store/db.js";
import { DecisionRepo } from "../store/decision-repo.js";
import { DocumentRepo } from "../store/document-repo.js";
import { JobRepo } from "../store/job-repo.js";
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
  /** Agent session and job settings (STACKL_AGENT_*, STACKL_JOB_*). */
  readonly agents: AgentsConfig;
  readonly agentRepo: AgentRepo;
  readonly jobRepo: JobRepo;
  /** One LISTEN per job channel for this process (job waiters, log followers, agent replicas). */
  readonly jobEvents: JobEvents;
  /** Creates jobs and waits for them (RunJob, stack orchestration): see src/agents/README.md. */
  readonly jobDispatcher: JobDispatcher;
  /** Starts a worker pool on the configured queue in this process. */
  startWorkers(concurrency: number): Promise<WorkerPool>;
  /** Stops loops and workers (workers get `graceMs`), then closes the bus and the store. Idempotent. */
  close(graceMs: number): Promise<void>;
}

export interface CoreOptions {
  /**
   * Wake the outbox relay on every NOTIFY. Servers (where tasks are created) do; `stackl worker` runs it only as a
   * once-a-second backstop, so that a task's NOTIFY does not wake every worker process (measured: relay wake-ups made
   * each task more expensive with every added worker). Any number of relays is safe (SKIP LOCKED).
   * @default true
   */
  relayListens?: boolean;
}

export async function openCore(
  config: Config,
  logger: Logger,
  signal: AbortSignal,
  options: CoreOptions = {},
): Promise<Core> {
  const tasks = loadTaskConfig();
  const agents = loadAgentsConfig();
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
  const relay = new OutboxRelay(
    { repo: taskRepo, bus, notifier, logger: logger.child({ component: "outbox-relay" }) },
    options.relayListens === false ? { listen: false, idleWakeMs: 1_000 } : {},
  );
  const sweeper = new Sweeper(
    { repo: taskRepo, logger: logger.child({ component: "sweeper" }) },
    { periodMs: tasks.sweepPeriodMs, republishAfterMs: tasks.republishAfterMs },
  );
  const agentRepo = new AgentRepo(db);
  const jobRepo = new JobRepo(db);
  const jobEvents = new JobEvents(db);
  const jobDispatcher = new JobDispatcher({
    repo: jobRepo,
    bus,
    events: jobEvents,
    config: agents,
    logger: logger.child({ component: "jobs" }),
  });
  const documentRepo = new DocumentRepo(db);
  const stackRepo = new StackRepo(db);
  registry.register(
    STACK_RUN_TASK,
    createStackRunHandler({
      documents: documentRepo,
      stacks: stackRepo,
      dispatcher: new AgentStepDispatcher(jobDispatcher),
    }),
  );
  const jobSweeper = new JobSweeper(
    { agentRepo, jobRepo, dispatcher: jobDispatcher, logger: logger.child({ component: "job-sweeper" }) },
    { periodMs: tasks.sweepPeriodMs, staleAfterMs: agents.staleAfterMs },
  );
  relay.start(loops.signal);
  sweeper.start(loops.signal);
  jobSweeper.start(loops.signal);
  const pools: WorkerPool[] = [];
  let closing: Promise<void> | undefined;

  return {
    config,
    tasks,
    db,
    bus,
    notifier,
    documentRepo,
    taskRepo,
    stackRepo,
    decisionRepo: new DecisionRepo(db),
    registry,
    logger,
    agents,
    agentRepo,
    jobRepo,
    jobEvents,
    jobDispatcher,
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
        await Promise.all([relay.stopped(), sweeper.stopped(), jobSweeper.stopped()]);
        await notifier.close().catch((err) => logger.warn({ err }, "closing listeners failed"));
        await jobEvents.close().catch((err) => logger.warn({ err }, "closing job listeners failed"));
        await bus.close();
        await db.close();
      })();
      return closing;
    },
  };
}
