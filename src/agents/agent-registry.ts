import { randomUUID } from "node:crypto";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { ConnectRequest, ConnectResponse, Hello } from "../../gen/stackl/v1/agents_pb.js";
import type { Bus, Unsubscribe } from "../bus/bus.js";
import { Semaphore } from "../bus/semaphore.js";
import { ErrorCode, isStacklError, StacklError } from "../errors.js";
import type { AgentRepo } from "../store/agent-repo.js";
import type { JobRepo } from "../store/job-repo.js";
import { AgentStreamSession, HELLO_TIMEOUT_MS, openRequest, type SessionHost } from "./agent-session.js";
import type { AgentsConfig } from "./agents-config.js";
import type { JobDispatcher } from "./job-dispatcher.js";
import type { JobEvents } from "./job-events.js";
import {
  AGENT_DRAIN_SUBJECT,
  AGENT_REVOKE_SUBJECT,
  AGENT_SESSION_SUBJECT,
  decodeName,
  encodeName,
  JOB_CANCEL_SUBJECT,
  subjectFor,
} from "./subjects.js";

/** How long `close()` waits for sessions to record their disconnect. */
export const CLOSE_WAIT_MS = 5_000;
/**
 * Session database work (open, claim, close) running at once on this replica. Thousands of agents reconnecting
 * together (a replica restart) queue here, in memory, instead of in the connection pool, whose acquire timeout
 * would turn a queue into refusals.
 */
export const SESSION_DB_CONCURRENCY = 6;

export interface AgentRegistryOptions {
  agentRepo: AgentRepo;
  jobRepo: JobRepo;
  bus: Bus;
  events: JobEvents;
  dispatcher: JobDispatcher;
  config: AgentsConfig;
  /** This replica's name (recorded on the agent rows whose streams it holds). */
  replica: string;
  logger: Logger;
  /**
   * Period of the reconcile pass (pending jobs and cancel requests for the agents held here, in case a doorbell was
   * lost).
   * @default 10000
   */
  reconcileMs?: number;
}

export type RegistryState = "starting" | "running" | "stopped";

/**
 * The agent streams held by this server replica, and what reaches them from elsewhere: bus doorbells (claimable
 * jobs for a target, cancel, revoke, drain, a newer session), NOTIFY on `stackl_job_targets`, a heartbeat flush to
 * PostgreSQL, the silence watchdog, and a periodic reconcile.
 */
export class AgentRegistry implements SessionHost {
  readonly agentRepo: AgentRepo;
  readonly jobRepo: JobRepo;
  readonly config: AgentsConfig;
  readonly replica: string;
  readonly logger: Logger;
  private readonly sessions = new Map<string, AgentStreamSession>();
  private readonly byPool = new Map<string, Set<AgentStreamSession>>();
  /** Round-robin positions of `wakeTarget` per (pool, handler set). */
  private readonly turns = new Map<string, number>();
  private readonly unsubscribes: Unsubscribe[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly closing = new Set<Promise<void>>();
  private readonly permits = new Semaphore(SESSION_DB_CONCURRENCY);
  private tickRunning = false;
  private reconcileRunning = false;
  #state: RegistryState = "stopped";

  constructor(private readonly opts: AgentRegistryOptions) {
    this.agentRepo = opts.agentRepo;
    this.jobRepo = opts.jobRepo;
    this.config = opts.config;
    this.replica = opts.replica;
    this.logger = opts.logger;
  }

  get state(): RegistryState {
    return this.#state;
  }

  /** Streams open on this replica. */
  get size(): number {
    return this.sessions.size;
  }

  session(name: string): AgentStreamSession | undefined {
    return this.sessions.get(name);
  }

  async start(): Promise<void> {
    this.transition("starting");
    const { bus } = this.opts;
    this.unsubscribes.push(
      bus.subscribe(`stackl.jobs.target.*`, (m) => this.wakeTarget(decodeName(m.data))),
      bus.subscribe(`${JOB_CANCEL_SUBJECT}.*`, (m) => void this.onCancelBell(decodeName(m.data))),
      bus.subscribe(`${AGENT_REVOKE_SUBJECT}.*`, (m) => {
        const body = JSON.parse(decodeName(m.data)) as { name: string; reason: string };
        this.sessions.get(body.name)?.revoke(body.reason);
      }),
      bus.subscribe(`${AGENT_DRAIN_SUBJECT}.*`, (m) => {
        const body = JSON.parse(decodeName(m.data)) as { name: string; reason: string };
        this.sessions.get(body.name)?.drain(body.reason);
      }),
      bus.subscribe(`${AGENT_SESSION_SUBJECT}.*`, (m) => {
        const body = JSON.parse(decodeName(m.data)) as { name: string; session: string };
        const s = this.sessions.get(body.name);
        if (s !== undefined && s.id !== body.session) {
          s.terminate(new ConnectError("superseded by a newer session of this agent", Code.Aborted));
        }
      }),
    );
    const stopTargets = await this.opts.events.subscribeAll("targets", (target) => {
      if (target === "") this.wakeAll();
      else this.wakeTarget(target);
    });
    this.unsubscribes.push(stopTargets);
    await bus.flush().catch(() => undefined);
    const tickMs = this.config.heartbeatMs;
    this.timers.push(setInterval(() => void this.tick(), tickMs));
    this.timers.push(setInterval(() => void this.reconcile(), this.opts.reconcileMs ?? 10_000));
    for (const t of this.timers) t.unref();
    this.transition("running");
  }

  /**
   * The body of AgentService.Connect: Hello first (within HELLO_TIMEOUT_MS), authenticated and recorded in one
   * transaction, then the session until the stream ends. Refusals end the stream with UNAUTHENTICATED or
   * PERMISSION_DENIED.
   */
  async *connect(
    requests: AsyncIterable<ConnectRequest>,
    ctx: HandlerContext,
    drainSignal: AbortSignal,
  ): AsyncGenerator<ConnectResponse> {
    if (this.#state !== "running") throw new ConnectError("agent sessions are not being accepted", Code.Unavailable);
    const iter = requests[Symbol.asyncIterator]();
    const hello = await readHello(iter, ctx.signal);
    const sessionId = randomUUID();
    const { input, credential } = openRequest(hello, this, sessionId);
    let opened: Awaited<ReturnType<AgentRepo["openSession"]>>;
    try {
      opened = await this.limit(() => this.agentRepo.openSession(input, ctx.signal));
    } catch (err) {
      if (isStacklError(err, ErrorCode.Unauthenticated) || isStacklError(err, ErrorCode.PermissionDenied)) {
        this.logger.warn(
          { agent: hello.name, pool: hello.pool, enrolling: input.auth.kind === "token", reason: err.message },
          "agent refused",
        );
      }
      throw err;
    }
    const session = new AgentStreamSession(this, opened, sessionId);
    yield* session.run(opened, credential, iter, ctx, drainSignal);
  }

  attach(session: AgentStreamSession): void {
    const old = this.sessions.get(session.name);
    if (old !== undefined && old !== session) {
      old.terminate(new ConnectError("superseded by a newer session of this agent", Code.Aborted));
      this.detach(old);
    }
    this.sessions.set(session.name, session);
    let pool = this.byPool.get(session.pool);
    if (pool === undefined) {
      pool = new Set();
      this.byPool.set(session.pool, pool);
    }
    pool.add(session);
    this.closing.add(session.closedPromise);
    void session.closedPromise.then(() => this.closing.delete(session.closedPromise));
    try {
      this.opts.bus.publish(
        subjectFor(AGENT_SESSION_SUBJECT, session.name),
        encodeName(JSON.stringify({ name: session.name, session: session.id })),
      );
    } catch (err) {
      this.logger.warn({ err, agent: session.name }, "could not announce the new session");
    }
  }

  detach(session: AgentStreamSession): void {
    if (this.sessions.get(session.name) === session) this.sessions.delete(session.name);
    const pool = this.byPool.get(session.pool);
    pool?.delete(session);
    if (pool !== undefined && pool.size === 0) this.byPool.delete(session.pool);
  }

  /** Runs session database work under the replica's concurrency limit. */
  async limit<T>(fn: () => Promise<T>): Promise<T> {
    if (!(await this.permits.acquire())) throw new ConnectError("the server is shutting down", Code.Unavailable);
    try {
      return await fn();
    } finally {
      this.permits.release();
    }
  }

  ring(target: string, from?: AgentStreamSession): void {
    this.wakeTarget(target, from);
    this.opts.dispatcher.ring(target);
  }

  /**
   * Claimable jobs for `target` (an agent name or a pool). The agent of that name is woken; of a pool, ONE local
   * session per distinct handler set (round-robin among those with free capacity), not all of them: with N agents
   * in a pool a job costs one claim per replica instead of N. A session whose claim filled it wakes the next one
   * (more jobs may be waiting); the reconcile pass covers anything left over.
   */
  wakeTarget(target: string, except?: AgentStreamSession): void {
    this.sessions.get(target)?.wakePump();
    const pool = this.byPool.get(target);
    if (pool === undefined) return;
    const groups = new Map<string, AgentStreamSession[]>();
    for (const s of pool) {
      if (!s.canTakeJobs || s === except) continue;
      const list = groups.get(s.handlerKey);
      if (list === undefined) groups.set(s.handlerKey, [s]);
      else list.push(s);
    }
    for (const [key, list] of groups) {
      const turn = this.turns.get(`${target}\u0000${key}`) ?? 0;
      this.turns.set(`${target}\u0000${key}`, turn + 1);
      list[turn % list.length]?.wakePump(() => this.wakeTarget(target));
    }
  }

  private wakeAll(): void {
    for (const s of this.sessions.values()) s.wakePump();
  }

  private async onCancelBell(jobId: string): Promise<void> {
    for (const s of this.sessions.values()) {
      if (!s.holds(jobId)) continue;
      try {
        const job = await this.jobRepo.get(jobId);
        if (job !== undefined && job.agent === s.name && job.cancelRequestedAt !== null) {
          s.cancel(job.id, job.epoch, job.cancelGraceMs, job.cancelReason);
        }
      } catch (err) {
        this.logger.warn({ err, job: jobId }, "could not read a job to cancel (the reconcile loop will retry)");
      }
    }
  }

  /** Heartbeat flush (one statement for every session heard from) and the silence watchdog. */
  private async tick(): Promise<void> {
    if (this.tickRunning || this.#state !== "running") return;
    this.tickRunning = true;
    try {
      const now = Date.now();
      const heard: AgentStreamSession[] = [];
      for (const s of this.sessions.values()) {
        if (s.isClosed) continue;
        if (now - s.lastSeen > this.config.disconnectAfterMs) {
          s.terminate(
            new ConnectError(
              `no message from the agent for ${Math.round((now - s.lastSeen) / 1000)} s; disconnected`,
              Code.DeadlineExceeded,
            ),
          );
          continue;
        }
        if (s.lastSeen > s.flushedSeen) heard.push(s);
      }
      if (heard.length === 0) return;
      const gone = await this.agentRepo.touchSessions(heard.map((s) => ({ name: s.name, sessionId: s.id })));
      for (const s of heard) s.flushedSeen = s.lastSeen;
      for (const g of gone) {
        const s = this.sessions.get(g.name);
        if (s !== undefined && s.id === g.sessionId) {
          s.terminate(new ConnectError("this session is no longer the agent's live session", Code.Aborted));
        }
      }
    } catch (err) {
      this.logger.warn({ err }, "recording heartbeats failed");
    } finally {
      this.tickRunning = false;
    }
  }

  /** Finds what doorbells may have missed: claimable jobs and cancel requests for the agents held here. */
  private async reconcile(): Promise<void> {
    if (this.reconcileRunning || this.#state !== "running" || this.sessions.size === 0) return;
    this.reconcileRunning = true;
    try {
      const names = [...this.sessions.keys()];
      const targets = [...new Set([...names, ...this.byPool.keys()])];
      for (const target of await this.jobRepo.pendingTargets(targets)) this.wakeTarget(target);
      for (const c of await this.jobRepo.cancelRequests(names)) {
        this.sessions.get(c.agent)?.cancel(c.id, c.epoch, c.graceMs, c.reason);
      }
    } catch (err) {
      this.logger.warn({ err }, "reconcile pass failed");
    } finally {
      this.reconcileRunning = false;
    }
  }

  /** Stops the loops, ends every stream (UNAVAILABLE: reconnect elsewhere) and waits for their cleanup. */
  async close(): Promise<void> {
    if (this.#state === "stopped") return;
    this.transition("stopped");
    for (const t of this.timers) clearInterval(t);
    for (const u of this.unsubscribes) u();
    for (const s of this.sessions.values()) {
      s.terminate(new ConnectError("the server is shutting down; reconnect", Code.Unavailable));
    }
    const wait = new Promise<void>((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref());
    await Promise.race([Promise.allSettled([...this.closing]), wait]);
  }

  private transition(to: RegistryState): void {
    this.logger.info({ from: this.#state, to, replica: this.replica }, "agent registry state");
    this.#state = to;
  }
}

/** The first message, which must be a Hello, within HELLO_TIMEOUT_MS. */
async function readHello(iter: AsyncIterator<ConnectRequest>, signal: AbortSignal): Promise<Hello> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ConnectError(`no Hello within ${HELLO_TIMEOUT_MS / 1000} s`, Code.DeadlineExceeded)),
      HELLO_TIMEOUT_MS,
    );
  });
  try {
    signal.throwIfAborted();
    const first = await Promise.race([iter.next(), timeout]);
    if (first.done) throw StacklError.invalid([{ field: "hello", message: "the stream ended before Hello" }]);
    if (first.value.msg.case !== "hello") {
      throw StacklError.invalid([
        { field: "hello", message: `the first message must be Hello, got ${first.value.msg.case ?? "nothing"}` },
      ]);
    }
    return first.value.msg.value;
  } finally {
    clearTimeout(timer);
  }
}
