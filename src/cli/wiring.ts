import path from "node:path";
import { AgentService } from "../../gen/stackl/v1/agents_pb.js";
import { DocumentService } from "../../gen/stackl/v1/documents_pb.js";
import { JobService } from "../../gen/stackl/v1/jobs_pb.js";
import { PolicyService } from "../../gen/stackl/v1/policies_pb.js";
import { StackInstanceService } from "../../gen/stackl/v1/stack_instances_pb.js";
import { TaskService } from "../../gen/stackl/v1/tasks_pb.js";
import { AgentRegistry } from "../agents/agent-registry.js";
import { MAX_AGENT_FRAME_BYTES } from "../agents/agent-session.js";
import { startLocalAgent } from "../agents/local-agent.js";
import type { Config } from "../config/config.js";
import type { Logger } from "../observability/logger.js";
import { compilePolicyTemplates } from "../policy/compile-templates.js";
import { openCore } from "../runtime/core.js";
import { errorInterceptor } from "../server/error-interceptor.js";
import type { HealthComponent } from "../server/health-monitor.js";
import type { RegisterServices } from "../server/routes.js";
import { createAgentService } from "../services/agent-service.js";
import { createDocumentService } from "../services/document-service.js";
import { createJobService } from "../services/job-service.js";
import { createPolicyService } from "../services/policy-service.js";
import { createStackInstanceService } from "../services/stack-instance-service.js";
import { createTaskService } from "../services/task-service.js";

/**
 * Builds what the server runs on: the core (store, bus, task system, job dispatch: `runtime/core.ts`), the health
 * components (store and bus readiness), every stackl.v1 service implementation, and in `dev` the in-process workers
 * and the local agent (pool `common`, the same agent code as `stackl-agent`). `serve` and `dev` call it before
 * `startServer` and close it after the server stopped; `stackl worker` opens the core alone.
 */

/** Which process the runtime is for: `serve` (API only), `dev` (everything in one process), `worker`. */
export type RuntimeRole = "serve" | "dev" | "worker";

export interface Runtime {
  /** Readiness of what was built (store, bus, …): the server is SERVING only when all are ready. */
  readonly healthComponents: readonly HealthComponent[];
  /** Registers the service implementations this runtime provides on the server's router. */
  readonly register: RegisterServices;
  /**
   * Releases everything, last built first (workers drain, then the bus, then the store). Aborting `signal` asks for
   * a fast, forced close. Idempotent.
   */
  close(signal?: AbortSignal): Promise<void>;
}

/** A close step; runs in reverse order of registration. */
type Closer = (signal?: AbortSignal) => Promise<void>;

export async function buildRuntime(
  config: Config,
  logger: Logger,
  signal: AbortSignal,
  role: RuntimeRole = "serve",
): Promise<Runtime> {
  signal.throwIfAborted();
  const log = logger.child({ component: "runtime", role });
  const components: HealthComponent[] = [];
  const registrations: RegisterServices[] = [];
  const closers: Closer[] = [];

  const core = await openCore(config, logger, signal);
  closers.push(async (closeSignal) => {
    await core.close(closeSignal?.aborted ? 0 : config.shutdownGraceMs);
  });
  components.push(
    { name: "store", check: (s) => core.db.ready({ signal: s }) },
    { name: "bus", check: (s) => core.bus.ready(s) },
  );
  registrations.push((router) => {
    router.service(
      DocumentService,
      createDocumentService({
        repo: core.documentRepo,
        notifier: core.notifier,
        prepare: (docs, s) => compilePolicyTemplates(docs, log, s),
      }),
    );
    router.service(
      StackInstanceService,
      createStackInstanceService({
        documents: core.documentRepo,
        stacks: core.stackRepo,
        tasks: core.taskRepo,
        decisions: core.decisionRepo,
        notifier: core.notifier,
        bus: core.bus,
      }),
    );
    router.service(PolicyService, createPolicyService({ documents: core.documentRepo, decisions: core.decisionRepo }));
    router.service(TaskService, createTaskService({ repo: core.taskRepo, notifier: core.notifier, bus: core.bus }));
  });

  // Agents and jobs (issue 5): this replica holds agent streams (AgentService.Connect) and serves JobService.
  const agentRegistry = new AgentRegistry({
    agentRepo: core.agentRepo,
    jobRepo: core.jobRepo,
    bus: core.bus,
    events: core.jobEvents,
    dispatcher: core.jobDispatcher,
    config: core.agents,
    replica: config.replicaName,
    reconcileMs: core.tasks.sweepPeriodMs,
    logger: logger.child({ component: "agents" }),
  });
  await agentRegistry.start();
  closers.push(() => agentRegistry.close());
  const agentService = createAgentService({
    agentRepo: core.agentRepo,
    jobRepo: core.jobRepo,
    registry: agentRegistry,
    dispatcher: core.jobDispatcher,
    bus: core.bus,
    logger: logger.child({ component: "agents" }),
  });
  registrations.push((router) => {
    router.service(AgentService, agentService, { readMaxBytes: MAX_AGENT_FRAME_BYTES });
    router.service(
      JobService,
      createJobService({ repo: core.jobRepo, dispatcher: core.jobDispatcher, events: core.jobEvents }),
    );
  });

  if (role === "dev") {
    await core.startWorkers(config.workerConcurrency);
    // The local agent (name and pool `common`): the same agent code as stackl-agent, over a private socket.
    const localAgent = await startLocalAgent({
      routes: (router) => router.service(AgentService, agentService),
      interceptors: [errorInterceptor(log)],
      agentRepo: core.agentRepo,
      stateDir: path.join(config.dataDir, "agent"),
      serverUrl: `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${config.port}`,
      logger: logger.child({ component: "local-agent" }),
    });
    closers.push(async (closeSignal) => {
      await localAgent.close(closeSignal?.aborted ? 0 : Math.min(config.shutdownGraceMs, 5_000));
    });
  }
  log.info({ store: core.db.kind, bus: core.bus.kind }, "runtime ready");

  let closing: Promise<void> | undefined;
  return {
    healthComponents: components,
    register: (router) => {
      for (const register of registrations) register(router);
    },
    close: (closeSignal) => {
      closing ??= (async () => {
        for (const close of closers.reverse()) {
          try {
            await close(closeSignal);
          } catch (err) {
            log.error({ err }, "closing a runtime part failed");
          }
        }
      })();
      return closing;
    },
  };
}
