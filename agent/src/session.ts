import { EventEmitter } from "node:events";
import type * as http2 from "node:http2";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import {
  AgentService,
  type ConnectResponse,
  type Drain,
  type HelloSchema,
  type JobCancel,
  type JobInFlightSchema,
  type JobOffer,
  JobOutcome,
  type JobResult,
  JobResultSchema,
  type LogAck,
  type Rejected,
  type Welcome,
} from "../../gen/stackl/v1/agents_pb.js";
import { type JobSpec, LogStream } from "../../gen/stackl/v1/jobs_pb.js";
import { delay, errorMessage, within } from "./abort.js";
import { authRetryDelay, type BackoffPolicy, backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
import { Connection, type OutgoingMessage } from "./connection.js";
import { CredentialStore } from "./credential-store.js";
import { Executor, type JobOutcomeName, type JobReport, type RunningJob, SYSTEM_PREFIX } from "./executor.js";
import type { Handler, LogStreamName } from "./handler.js";
import { agentBaseEnv } from "./handlers/job-env.js";
import { JobJournal, processStartTicks } from "./job-journal.js";
import { JobLog, MAX_UNACKED_LOG_BYTES } from "./job-log.js";
import { DEFAULT_STOP_GRACE_MS } from "./job-stop.js";
import { Notifier } from "./notifier.js";
import { groupMembers, terminateGroup } from "./process-group.js";
import { defaultSecretProviders, type SecretProviders } from "./secret-providers.js";
import { AGENT_VERSION } from "./version.js";

/**
 * The agent's session with the control plane: one AgentService.Connect bidi stream at a time, re-opened forever
 * (exponential backoff with full jitter) until the agent stops.
 *
 * States: `connecting` (opening a stream with the stored credential) or `enrolling` (with the enrollment token),
 * `connected` (Welcome received), `draining` (no new jobs; running ones finish, results are delivered, then the
 * stream is closed), `stopped`. Every transition is logged.
 *
 * Protocol, as the agent implements it (agents.proto; see agent/README.md for the server's side):
 * 1. Hello first: identity, handlers, capacity, the stored credential (or the enrollment token on first run), and
 *    every job the agent holds (epoch, first unacked log seq, `finished` when only its result is left).
 * 2. Welcome: stores `agent_credential` when present (0600), applies `resume` decisions (resume=false → the job is
 *    killed and forgotten; resume=true → unacked logs are resent from `next_log_seq`, then the result), starts
 *    heartbeats every `heartbeat_interval` (default 5 s) listing running jobs. A finished job the server does not
 *    mention is forgotten (its result was recorded). A running job it does not mention keeps running.
 * 3. JobOffer → JobAccepted, or JobDeclined (draining, unknown handler, no capacity, already held at another
 *    epoch). Output is masked, numbered and sent as LogChunks; a JobResult follows once every chunk is acked.
 * 4. LogAck{seq} drops chunks up to seq. A LogAck received after the JobResult was sent, with seq >= the result's
 *    `last_log_seq`, confirms the result: the job is forgotten. Unconfirmed results are reported again after a
 *    reconnect (Hello: finished=true) and survive agent restarts (job journal).
 * 5. JobCancel → SIGTERM to the job's process group, SIGKILL after `grace` (default 10 s), result CANCELLED.
 *    Rejected{job} (stale epoch) → the job is killed and forgotten, no result. Drain → drain, then exit.
 * Unauthenticated/PermissionDenied on the stream → logged as such and retried after about the backoff cap.
 */

export type SessionState = "connecting" | "enrolling" | "connected" | "draining" | "stopped";

/** Heartbeat interval when Welcome names none. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 5_000;
/** Lower bound of the heartbeat interval whatever the server says. */
export const MIN_HEARTBEAT_INTERVAL_MS = 50;
/** HTTP/2 PING every 10 s, dead after 5 s without the answer (DESIGN section 6). */
export const KEEPALIVE_PING_INTERVAL_MS = 10_000;
export const KEEPALIVE_PING_TIMEOUT_MS = 5_000;
/** A stream that brings no Welcome within this time is abandoned and retried. */
export const WELCOME_TIMEOUT_MS = 30_000;
/** How long a drain on SIGTERM waits for running jobs before stopping them. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 5 * 60_000;
/** After the jobs of a drain are done, how long to wait for their results to be confirmed. */
export const RESULT_FLUSH_TIMEOUT_MS = 10_000;
/** After half-closing the stream, how long to wait for the server to end it. */
export const CLOSE_TIMEOUT_MS = 5_000;
/** Grace for jobs still running when the drain timeout passes. */
export const SHUTDOWN_STOP_GRACE_MS = DEFAULT_STOP_GRACE_MS;
/** Grace when stopping the process group of a job found running after an agent restart. */
export const RECOVERY_STOP_GRACE_MS = 5_000;
/** Sent results kept while waiting for a confirmation; the oldest beyond this are forgotten. */
export const MAX_UNCONFIRMED_RESULTS = 100;
/** Largest message accepted from the server (a JobOffer with its parameters). */
export const MAX_RECEIVE_BYTES = 4 * 1024 * 1024;
/** Largest message sent (DESIGN section 6: 1 MiB agent frame). */
export const MAX_SEND_BYTES = 1024 * 1024;
/** Longest timer Node supports (about 24.8 days): "wait until it happens or we stop". */
const MAX_TIMER_MS = 2_147_483_647;
/** Longest error text reported in a JobResult. */
export const MAX_ERROR_CHARS = 8 * 1024;
/** Room left for the envelope when sizing chunks from Welcome.max_frame_bytes. */
export const FRAME_OVERHEAD_BYTES = 1024;

export interface SessionOptions {
  /** Server base URL: `http://host:port` (h2c) or `https://host:port` (TLS). */
  server: string;
  name: string;
  pool: string;
  labels: Readonly<Record<string, string>>;
  /** Maximum concurrent jobs. */
  capacity: number;
  /** Enabled handlers by tool name. */
  handlers: ReadonlyMap<string, Handler>;
  /** Single-use enrollment token, used while no credential is stored. @default undefined */
  enrollmentToken?: string | undefined;
  /** Holds credential.json and the job journal. */
  stateDir: string;
  /** Root of job working directories. */
  workDir: string;
  logger: Logger;
  /** @default env + file providers */
  secretProviders?: SecretProviders;
  /** Base environment of job processes. @default the agent's environment minus STACKL_AGENT_* */
  jobEnv?: Readonly<Record<string, string | undefined>>;
  /** @default DEFAULT_DRAIN_TIMEOUT_MS */
  drainTimeoutMs?: number;
  /** @default DEFAULT_BACKOFF (250 ms base, 30 s cap, full jitter) */
  backoff?: Partial<BackoffPolicy>;
  /** @default KEEPALIVE_PING_INTERVAL_MS */
  pingIntervalMs?: number;
  /** @default KEEPALIVE_PING_TIMEOUT_MS */
  pingTimeoutMs?: number;
  /** @default WELCOME_TIMEOUT_MS */
  welcomeTimeoutMs?: number;
  /** @default MAX_UNACKED_LOG_BYTES */
  maxUnackedLogBytes?: number;
  /** Job timeout when neither spec nor invocation has one. @default 1 h */
  defaultJobTimeoutMs?: number;
  /** Options for the HTTP/2 connection (TLS: `ca`, `cert`, `key`, `servername`). @default {} */
  http2Options?: http2.SecureClientSessionOptions;
  /** Reported in Hello. @default AGENT_VERSION */
  version?: string;
}

interface TrackedJob {
  readonly id: string;
  readonly epoch: bigint;
  readonly log: JobLog;
  state: "running" | "finished";
  run?: RunningJob | undefined;
  result?: JobResult | undefined;
  /** Id of the connection the result was last sent on. */
  resultSentOn?: number | undefined;
  pgid?: number | undefined;
  pgidStartTicks?: string | undefined;
  /** Read back from the journal at start-up; its log numbering is only known from the server's decision. */
  recovered?: { note?: string | undefined; seqKnown: boolean } | undefined;
  abandoned?: boolean;
}

/** Outcome of one stream. */
interface StreamEnd {
  welcomed: boolean;
  auth: boolean;
  reason: string;
}

class ProtocolError extends Error {
  override readonly name = "ProtocolError";
}

function toLogStream(stream: LogStreamName): LogStream {
  switch (stream) {
    case "stdout":
      return LogStream.STDOUT;
    case "stderr":
      return LogStream.STDERR;
    case "system":
      return LogStream.SYSTEM;
    default: {
      const unreachable: never = stream;
      throw new Error(`unknown stream ${String(unreachable)}`);
    }
  }
}

function toJobOutcome(outcome: JobOutcomeName): JobOutcome {
  switch (outcome) {
    case "succeeded":
      return JobOutcome.SUCCEEDED;
    case "failed":
      return JobOutcome.FAILED;
    case "cancelled":
      return JobOutcome.CANCELLED;
    case "timed_out":
      return JobOutcome.TIMED_OUT;
    default: {
      const unreachable: never = outcome;
      throw new Error(`unknown outcome ${String(unreachable)}`);
    }
  }
}

export class AgentSession extends EventEmitter {
  private readonly options: SessionOptions;
  private readonly logger: Logger;
  private readonly backoff: BackoffPolicy;
  private readonly executor: Executor;
  private readonly credentials: CredentialStore;
  private readonly journal: JobJournal;
  private readonly jobs = new Map<string, TrackedJob>();
  /** Jobs being killed after the server dropped them; they still hold capacity until gone. */
  private readonly dying = new Set<RunningJob>();
  /** Notified on every change of jobs (started, finished, dropped). */
  private readonly changed = new Notifier();
  /** Aborted when the session is done (wakes reconnect sleeps and drain waits). */
  private readonly lifecycle = new AbortController();
  private current: Connection | undefined;
  private connectionSeq = 0;
  private credential: string | undefined;
  private stateValue: SessionState = "connecting";
  private draining = false;
  private done = false;
  private maxChunkBytes: number | undefined;
  private maxFrameBytes: number | undefined;
  private runPromise: Promise<void> | undefined;

  constructor(options: SessionOptions) {
    super();
    this.options = options;
    this.logger = options.logger;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.credentials = new CredentialStore(options.stateDir);
    this.journal = new JobJournal(options.stateDir);
    this.executor = new Executor({
      handlers: options.handlers,
      secretProviders: options.secretProviders ?? defaultSecretProviders(),
      workDir: options.workDir,
      env: options.jobEnv ?? agentBaseEnv(),
      logger: options.logger,
      defaultTimeoutMs: options.defaultJobTimeoutMs,
      serverUrl: options.server,
    });
  }

  get state(): SessionState {
    return this.stateValue;
  }

  /** Ids of the jobs the agent holds (running or waiting for their result to be confirmed). */
  get jobIds(): string[] {
    return [...this.jobs.keys()];
  }

  /** Unacked log bytes held for all jobs (bounded by maxUnackedLogBytes per job, plus one read). */
  get bufferedLogBytes(): number {
    let n = 0;
    for (const job of this.jobs.values()) n += job.log.bufferedBytes;
    return n;
  }

  /** Number of jobs running (including dropped ones still being killed). */
  get runningCount(): number {
    let n = this.dying.size;
    for (const job of this.jobs.values()) if (job.state === "running") n++;
    return n;
  }

  /**
   * Runs the session until it is stopped (drain complete or `close()`). Throws only for problems that retrying
   * cannot fix (no credential and no enrollment token, unreadable credential file).
   */
  run(): Promise<void> {
    this.runPromise ??= this.loop();
    return this.runPromise;
  }

  /**
   * Graceful stop (SIGTERM): accept no more jobs, let running ones finish for up to the drain timeout (then stop
   * them), deliver their results, close the stream. Resolves when the session has stopped.
   */
  drain(reason = "shutdown requested"): Promise<void> {
    this.beginDrain(reason, true);
    return this.run();
  }

  /** Stops every running job now (SIGTERM, SIGKILL after `graceMs`); used on a second SIGTERM. */
  stopJobs(reason: string, graceMs = SHUTDOWN_STOP_GRACE_MS): void {
    for (const job of this.jobs.values()) {
      if (job.state === "running") job.run?.requestStop("shutdown", graceMs, reason);
    }
  }

  /** Immediate stop for tests and fatal errors: stops jobs (short grace) and ends the session. */
  async close(graceMs = 1_000): Promise<void> {
    this.draining = true;
    this.stopJobs("agent closed", graceMs);
    await within(
      this.waitUntil(() => this.runningCount === 0),
      graceMs + 10_000,
    );
    this.finish();
    if (this.runPromise) await this.runPromise;
  }

  // ----------------------------------------------------------------------------------------------------------------
  // Lifecycle

  private setState(next: SessionState): void {
    if (this.stateValue === next) return;
    const from = this.stateValue;
    this.stateValue = next;
    this.logger.info({ from, to: next }, `session ${next}`);
    this.emit("state", next, from);
  }

  private async loop(): Promise<void> {
    const stored = this.credentials.load();
    this.credential = stored?.agent_credential;
    if (!this.credential && !this.options.enrollmentToken) {
      throw new Error(
        `no agent credential in ${this.credentials.file} and no enrollment token: pass --token (or STACKL_AGENT_TOKEN)`,
      );
    }
    await this.recover();
    this.setState(this.credential ? "connecting" : "enrolling");
    let attempt = 0;
    while (!this.done) {
      const end = await this.connectOnce();
      if (this.done) break;
      if (end.welcomed) attempt = 0;
      let wait: number;
      if (end.auth) {
        wait = authRetryDelay(this.backoff);
        this.logger.error(
          { err: end.reason, retry_in_ms: wait },
          this.credential
            ? `the server refused this agent's credential; retrying in ${(wait / 1000).toFixed(1)} s. If the agent ` +
                `was revoked, delete ${this.credentials.file} and start it again with a new enrollment token`
            : `the server refused the enrollment token (tokens are single-use and expire); retrying in ` +
                `${(wait / 1000).toFixed(1)} s. Create a new one with AgentService.CreateEnrollmentToken`,
        );
      } else {
        wait = backoffDelay(attempt++, this.backoff);
        this.logger.warn({ err: end.reason, attempt, retry_in_ms: wait }, "stream ended; reconnecting");
      }
      if (!this.draining) this.setState(this.credential ? "connecting" : "enrolling");
      await delay(wait, this.lifecycle.signal);
    }
    this.setState("stopped");
  }

  /** Ends the session: closes the stream gracefully (half-close, bounded), stops reconnecting. */
  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.lifecycle.abort();
    const conn = this.current;
    if (conn) {
      conn.closing = true;
      conn.wake.notify();
      conn.timers.push(setTimeout(() => conn.abort(new Error("server did not close the stream")), CLOSE_TIMEOUT_MS));
    }
  }

  private beginDrain(reason: string, bounded: boolean): void {
    if (this.draining) return;
    this.draining = true;
    this.logger.info({ reason, running: this.runningCount }, "draining: no new jobs; finishing the running ones");
    this.setState("draining");
    void this.drainJobs(bounded).catch((err: unknown) => {
      this.logger.error({ err: errorMessage(err) }, "drain failed");
      this.finish();
    });
  }

  private async drainJobs(bounded: boolean): Promise<void> {
    const idle = (): boolean => this.runningCount === 0;
    if (bounded) {
      const timeout = this.options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
      if ((await within(this.waitUntil(idle), timeout, this.lifecycle.signal)) === undefined && !this.done) {
        this.logger.warn({ running: this.runningCount, timeout_ms: timeout }, "drain timeout: stopping running jobs");
        this.stopJobs(`agent shutting down (drain timeout ${timeout} ms passed)`);
        await within(this.waitUntil(idle), SHUTDOWN_STOP_GRACE_MS + 10_000, this.lifecycle.signal);
      }
    } else {
      await within(this.waitUntil(idle), MAX_TIMER_MS, this.lifecycle.signal);
    }
    if (this.done) return;
    const left = await within(
      this.waitUntil(() => this.jobs.size === 0),
      RESULT_FLUSH_TIMEOUT_MS,
      this.lifecycle.signal,
    );
    if (left === undefined && this.jobs.size > 0) {
      this.logger.warn(
        { jobs: this.jobIds },
        "results not confirmed by the server in time; they stay in the job journal and are reported on the next start",
      );
    }
    this.logger.info("drain complete; closing the session");
    this.finish();
  }

  /** Resolves when `cond()` holds (checked on every job change). */
  private async waitUntil(cond: () => boolean): Promise<void> {
    for (;;) {
      const next = this.changed.next();
      if (cond()) return;
      await next;
    }
  }

  // ----------------------------------------------------------------------------------------------------------------
  // Start-up recovery from the job journal

  private async recover(): Promise<void> {
    const { entries, broken } = this.journal.load();
    for (const file of broken) this.logger.warn({ file }, "unreadable job journal entry ignored");
    for (const entry of entries) {
      const job: TrackedJob = {
        id: entry.jobId,
        epoch: entry.epoch,
        log: this.newLog(entry.jobId, entry.epoch, entry.nextLogSeq),
        state: "finished",
      };
      if (entry.result) {
        job.result = entry.result;
        job.recovered = { seqKnown: true };
        this.logger.info({ job: job.id, epoch: Number(job.epoch) }, "recovered an undelivered job result");
      } else {
        let note = "the agent restarted while this job was running";
        const pgid = entry.pgid;
        if (pgid !== undefined && groupMembers(pgid).length > 0) {
          const ticks = processStartTicks(pgid);
          if (ticks === undefined || ticks === entry.pgidStartTicks) {
            await terminateGroup(pgid, RECOVERY_STOP_GRACE_MS);
            note += `; its process group ${pgid} was stopped`;
          }
        }
        job.result = create(JobResultSchema, {
          jobId: job.id,
          epoch: job.epoch,
          outcome: JobOutcome.FAILED,
          error: note,
          exitCode: -1,
        });
        job.recovered = { seqKnown: false, note: `${SYSTEM_PREFIX}${note}\n` };
        this.logger.warn({ job: job.id, epoch: Number(job.epoch) }, note);
        this.writeJournal(job);
      }
      this.jobs.set(job.id, job);
    }
  }

  // ----------------------------------------------------------------------------------------------------------------
  // One stream

  private async connectOnce(): Promise<StreamEnd> {
    const conn = new Connection(++this.connectionSeq);
    this.current = conn;
    const manager = new Http2SessionManager(
      this.options.server,
      {
        pingIntervalMs: this.options.pingIntervalMs ?? KEEPALIVE_PING_INTERVAL_MS,
        pingTimeoutMs: this.options.pingTimeoutMs ?? KEEPALIVE_PING_TIMEOUT_MS,
        // The session's own stream is always open while connected, so pings run anyway. With idle pings on,
        // connect-node 2.2.0 re-arms its ping timer after `abort()` and pings the destroyed session
        // (ERR_HTTP2_INVALID_SESSION, uncaught, ~10 s later): observed crashing agents under load.
        pingIdleConnection: false,
      },
      this.options.http2Options ?? {},
    );
    const transport = createGrpcTransport({
      baseUrl: this.options.server,
      sessionManager: manager,
      readMaxBytes: MAX_RECEIVE_BYTES,
      writeMaxBytes: MAX_SEND_BYTES,
    });
    const client = createClient(AgentService, transport);
    const welcomeTimeout = this.options.welcomeTimeoutMs ?? WELCOME_TIMEOUT_MS;
    conn.timers.push(
      setTimeout(() => {
        if (!conn.welcomed) conn.abort(new Error(`no Welcome within ${welcomeTimeout} ms`));
      }, welcomeTimeout),
    );
    this.logger.debug({ connection: conn.id, server: this.options.server }, "opening stream");
    try {
      for await (const res of client.connect(this.outbound(conn), { signal: conn.controller.signal })) {
        this.onResponse(conn, res);
      }
      return { welcomed: conn.welcomed, auth: false, reason: "the server ended the stream" };
    } catch (err) {
      const ce = ConnectError.from(err);
      const auth = ce.code === Code.Unauthenticated || ce.code === Code.PermissionDenied;
      return { welcomed: conn.welcomed, auth, reason: `${Code[ce.code] ?? ce.code}: ${ce.rawMessage}` };
    } finally {
      conn.close();
      manager.abort();
      if (this.current === conn) this.current = undefined;
    }
  }

  private async *outbound(conn: Connection): AsyncGenerator<OutgoingMessage> {
    yield { msg: { case: "hello", value: this.buildHello(conn) } };
    for (;;) {
      const woken = conn.wake.next();
      if (conn.closed) return;
      const msg = conn.welcomed && !conn.controller.signal.aborted ? this.nextMessage(conn) : undefined;
      if (msg) {
        yield msg;
        continue;
      }
      if (conn.closing) return; // half-close: the server ends the stream
      await woken;
    }
  }

  private buildHello(conn: Connection): MessageInitShape<typeof HelloSchema> {
    const jobsInFlight: MessageInitShape<typeof JobInFlightSchema>[] = [];
    for (const job of this.jobs.values()) {
      conn.reported.add(job.id);
      jobsInFlight.push({
        jobId: job.id,
        epoch: job.epoch,
        nextLogSeq: job.recovered && !job.recovered.seqKnown ? 0n : job.log.firstUnackedSeq,
        finished: job.state === "finished",
      });
    }
    const o = this.options;
    this.logger.info(
      { connection: conn.id, jobs_in_flight: jobsInFlight.length, enrolling: !this.credential },
      "hello",
    );
    return {
      name: o.name,
      pool: o.pool,
      labels: { ...o.labels },
      version: o.version ?? AGENT_VERSION,
      handlers: [...o.handlers.keys()].sort(),
      maxConcurrentJobs: o.capacity,
      jobsInFlight,
      credential: this.credential
        ? { case: "agentCredential", value: this.credential }
        : { case: "enrollmentToken", value: o.enrollmentToken ?? "" },
    };
  }

  /** Next message for the stream: control messages first, then log chunks round-robin, then results. */
  private nextMessage(conn: Connection): OutgoingMessage | undefined {
    const control = conn.control.shift();
    if (control) return control;
    const jobs = [...this.jobs.values()];
    for (let i = 0; i < jobs.length; i++) {
      const index = (conn.rr + i) % jobs.length;
      const chunk = jobs[index]!.log.takeUnsent();
      if (chunk) {
        conn.rr = (index + 1) % jobs.length;
        return { msg: { case: "logChunk", value: chunk } };
      }
    }
    for (const job of jobs) {
      if (job.state !== "finished" || !job.result || job.resultSentOn === conn.id || !job.log.allAcked) continue;
      job.resultSentOn = conn.id;
      job.result.lastLogSeq = job.log.lastSeq;
      this.logger.debug({ job: job.id, epoch: Number(job.epoch) }, "sending result");
      this.pruneUnconfirmed();
      return { msg: { case: "jobResult", value: job.result } };
    }
    return undefined;
  }

  private onResponse(conn: Connection, res: ConnectResponse): void {
    const m = res.msg;
    if (!conn.welcomed && m.case !== "welcome") {
      throw new ProtocolError(`expected Welcome as the first message, got ${m.case ?? "an empty message"}`);
    }
    switch (m.case) {
      case "welcome":
        this.onWelcome(conn, m.value);
        break;
      case "jobOffer":
        this.onOffer(conn, m.value);
        break;
      case "jobCancel":
        this.onCancel(conn, m.value);
        break;
      case "logAck":
        this.onLogAck(conn, m.value);
        break;
      case "drain":
        this.onDrain(m.value);
        break;
      case "rejected":
        this.onRejected(m.value);
        break;
      case undefined:
        this.logger.warn("empty message from the server ignored");
        break;
      default: {
        const unreachable: never = m;
        throw new ProtocolError(`unknown message ${String(unreachable)}`);
      }
    }
  }

  private onWelcome(conn: Connection, w: Welcome): void {
    if (conn.welcomed) {
      this.logger.warn("second Welcome on one stream ignored");
      return;
    }
    conn.welcomed = true;
    if (w.agentCredential !== "") {
      const stored = this.credentials.save(w.agentCredential, this.options.server, this.options.name);
      this.credential = stored.agent_credential;
      this.logger.info({ file: this.credentials.file }, "enrolled: agent credential stored");
    } else if (!this.credential) {
      this.logger.warn("the server accepted the enrollment token but sent no agent credential");
    }
    if (w.maxFrameBytes > 0) {
      this.maxFrameBytes = w.maxFrameBytes;
      this.maxChunkBytes = w.maxFrameBytes - FRAME_OVERHEAD_BYTES;
      for (const job of this.jobs.values()) job.log.limitChunkBytes(this.maxChunkBytes);
    }
    const decisions = new Map(w.resume.map((d) => [d.jobId, d]));
    for (const id of conn.reported) {
      const job = this.jobs.get(id);
      if (!job) continue;
      const d = decisions.get(id);
      decisions.delete(id);
      if (d === undefined) {
        if (job.state === "finished") {
          this.forget(job, "the server did not ask for it again (result recorded)");
        } else {
          job.log.rewind(0n);
        }
        continue;
      }
      if (!d.resume || (d.epoch !== 0n && d.epoch !== job.epoch)) {
        this.abandon(job, `server decided not to resume it${d.reason ? `: ${d.reason}` : ""}`);
        continue;
      }
      const resultSeq = job.result?.lastLogSeq ?? 0n;
      if (job.log.rewind(d.nextLogSeq)) {
        this.logger.warn(
          { job: id, epoch: Number(job.epoch), server_next_seq: Number(d.nextLogSeq) },
          "the server asks for log chunks this agent no longer holds",
        );
      }
      job.resultSentOn = undefined;
      if (job.recovered) {
        const lost = job.recovered.seqKnown && d.nextLogSeq > 0n && d.nextLogSeq <= resultSeq;
        const note =
          job.recovered.note ??
          (lost ? `${SYSTEM_PREFIX}log output after this point was lost when the agent restarted\n` : undefined);
        if (note) job.log.append(LogStream.SYSTEM, Buffer.from(note));
        job.recovered = undefined;
      }
      this.logger.info(
        { job: id, epoch: Number(job.epoch), next_log_seq: Number(d.nextLogSeq), finished: job.state === "finished" },
        "resuming job",
      );
    }
    for (const d of decisions.values()) {
      this.logger.warn({ job: d.jobId, epoch: Number(d.epoch) }, "resume decision for a job this agent does not hold");
    }
    const interval = w.heartbeatInterval
      ? Math.max(MIN_HEARTBEAT_INTERVAL_MS, durationMs(w.heartbeatInterval))
      : DEFAULT_HEARTBEAT_INTERVAL_MS;
    conn.heartbeat = setInterval(() => this.queueHeartbeat(conn), interval);
    if (!this.done) this.setState(this.draining ? "draining" : "connected");
    this.logger.info({ session: w.sessionId, heartbeat_ms: interval, connection: conn.id }, "welcome");
    this.emit("welcome", w);
    this.changed.notify();
    conn.wake.notify();
  }

  private queueHeartbeat(conn: Connection): void {
    if (conn.control.some((m) => m.msg?.case === "heartbeat")) return;
    const jobs: MessageInitShape<typeof JobInFlightSchema>[] = [];
    for (const job of this.jobs.values()) {
      if (job.state === "running") jobs.push({ jobId: job.id, epoch: job.epoch, nextLogSeq: job.log.nextSeq });
    }
    conn.push({ msg: { case: "heartbeat", value: { jobs } } });
  }

  private onOffer(conn: Connection, offer: JobOffer): void {
    const { jobId, epoch } = offer;
    const log = this.logger.child({ job: jobId, epoch: Number(epoch) });
    const existing = this.jobs.get(jobId);
    if (existing && existing.epoch === epoch && existing.state === "running") {
      conn.push({ msg: { case: "jobAccepted", value: { jobId, epoch } } }); // a repeated offer: idempotent
      return;
    }
    const spec = offer.spec;
    const reason = this.declineReason(offer, existing);
    if (reason !== undefined || !spec) {
      log.info({ reason }, "job declined");
      conn.push({
        msg: { case: "jobDeclined", value: { jobId, epoch, reason: reason ?? "offer without a job spec" } },
      });
      return;
    }
    const job: TrackedJob = { id: jobId, epoch, log: this.newLog(jobId, epoch, offer.nextLogSeq), state: "running" };
    this.jobs.set(jobId, job);
    this.writeJournal(job);
    conn.push({ msg: { case: "jobAccepted", value: { jobId, epoch } } });
    log.info({ tool: spec.invocation?.tool, action: spec.action }, "job accepted");
    this.startJob(job, spec, offer.jobToken, offer.deadline ? timestampDate(offer.deadline) : undefined);
  }

  /** Why an offer cannot be taken, or undefined when it can. */
  private declineReason(offer: JobOffer, existing: TrackedJob | undefined): string | undefined {
    if (this.draining) return "agent is draining";
    if (existing) return `job is already held by this agent at epoch ${existing.epoch}`;
    if (!offer.spec) return "offer without a job spec";
    const tool = offer.spec.invocation?.tool ?? "";
    if (!this.executor.has(tool)) {
      const enabled = [...this.options.handlers.keys()].sort().join(", ");
      return `handler "${tool}" is not enabled on this agent (enabled: ${enabled})`;
    }
    if (this.runningCount >= this.options.capacity) {
      return `no capacity (${this.runningCount}/${this.options.capacity} jobs running)`;
    }
    return undefined;
  }

  private startJob(job: TrackedJob, spec: JobSpec, jobToken: string, deadline: Date | undefined): void {
    const run = this.executor.start({
      id: job.id,
      epoch: job.epoch,
      spec,
      deadline,
      jobToken,
      log: (stream, data) => this.appendLog(job, stream, data),
      onProcess: (pid) => {
        job.pgid = pid;
        job.pgidStartTicks = processStartTicks(pid);
        if (!job.abandoned) this.writeJournal(job);
      },
    });
    job.run = run;
    this.changed.notify();
    run.done.then(
      (report) => this.onJobFinished(job, run, report),
      (err: unknown) =>
        this.onJobFinished(job, run, { outcome: "failed", outputs: {}, error: errorMessage(err), exitCode: -1 }),
    );
  }

  private appendLog(job: TrackedJob, stream: LogStreamName, data: Uint8Array | string): void | Promise<void> {
    if (job.abandoned) return undefined;
    job.log.append(toLogStream(stream), typeof data === "string" ? Buffer.from(data) : data);
    this.current?.wake.notify();
    return job.log.full ? job.log.waitForSpace() : undefined;
  }

  private onJobFinished(job: TrackedJob, run: RunningJob, report: JobReport): void {
    this.dying.delete(run);
    if (job.abandoned) {
      this.changed.notify();
      return;
    }
    job.state = "finished";
    job.run = undefined;
    job.result = this.buildResult(job, report);
    this.writeJournal(job);
    this.emit("job-finished", job.id, report);
    this.changed.notify();
    this.current?.wake.notify();
  }

  /**
   * The JobResult of a finished job. A result that would not fit in one frame (huge outputs) could never be
   * delivered, so it becomes a FAILED result saying why.
   */
  private buildResult(job: TrackedJob, report: JobReport): JobResult {
    const error = report.error.length > MAX_ERROR_CHARS ? `${report.error.slice(0, MAX_ERROR_CHARS)}…` : report.error;
    const result = create(JobResultSchema, {
      jobId: job.id,
      epoch: job.epoch,
      outcome: toJobOutcome(report.outcome),
      outputs: report.outputs,
      error,
      exitCode: report.exitCode,
      lastLogSeq: job.log.lastSeq,
    });
    const limit = Math.min(MAX_SEND_BYTES, this.maxFrameBytes ?? MAX_SEND_BYTES) - FRAME_OVERHEAD_BYTES;
    const size = toBinary(JobResultSchema, result).length;
    if (size <= limit) return result;
    this.logger.warn({ job: job.id, epoch: Number(job.epoch), bytes: size, limit }, "job outputs too large");
    result.outcome = JobOutcome.FAILED;
    result.outputs = {};
    result.error = `the job's outputs are too large to report (${size} bytes; the limit is ${limit})`;
    return result;
  }

  private onLogAck(conn: Connection, ack: LogAck): void {
    const job = this.jobs.get(ack.jobId);
    if (!job) return;
    job.log.ack(ack.seq);
    if (job.state === "finished" && job.result && job.resultSentOn === conn.id && ack.seq >= job.result.lastLogSeq) {
      this.forget(job, "result confirmed");
    }
    conn.wake.notify();
  }

  private onCancel(conn: Connection, cancel: JobCancel): void {
    const job = this.jobs.get(cancel.jobId);
    const log = this.logger.child({ job: cancel.jobId, epoch: Number(cancel.epoch) });
    if (!job) {
      log.warn("cancel for a job this agent does not hold; confirming it as cancelled");
      conn.push({
        msg: {
          case: "jobResult",
          value: {
            jobId: cancel.jobId,
            epoch: cancel.epoch,
            outcome: JobOutcome.CANCELLED,
            error: "job is not running on this agent",
          },
        },
      });
      return;
    }
    if (cancel.epoch !== 0n && cancel.epoch !== job.epoch) {
      log.warn({ held_epoch: Number(job.epoch) }, "cancel for another epoch of the job ignored");
      return;
    }
    if (job.state === "finished") {
      log.info("cancel for a finished job: its result stands");
      return;
    }
    const grace = cancel.grace ? durationMs(cancel.grace) : DEFAULT_STOP_GRACE_MS;
    log.info({ grace_ms: grace, reason: cancel.reason }, "cancelling job");
    this.appendLog(
      job,
      "system",
      `${SYSTEM_PREFIX}cancel requested${cancel.reason ? ` (${cancel.reason})` : ""}: SIGTERM to the job's ` +
        `processes, SIGKILL after ${grace} ms\n`,
    );
    job.run?.requestStop("cancel", grace, `cancelled${cancel.reason ? `: ${cancel.reason}` : ""}`);
  }

  private onDrain(drain: Drain): void {
    this.beginDrain(`server asked to drain${drain.reason ? `: ${drain.reason}` : ""}`, false);
  }

  private onRejected(r: Rejected): void {
    const job = this.jobs.get(r.jobId);
    if (!job) {
      this.logger.warn({ job: r.jobId, epoch: Number(r.epoch), reason: r.reason }, "server rejected a message");
      return;
    }
    if (r.epoch !== 0n && r.epoch !== job.epoch) {
      this.logger.warn({ job: r.jobId, epoch: Number(r.epoch), reason: r.reason }, "rejection for another epoch");
      return;
    }
    this.abandon(job, `rejected by the server${r.reason ? `: ${r.reason}` : ""}`);
  }

  // ----------------------------------------------------------------------------------------------------------------
  // Job bookkeeping

  private newLog(jobId: string, epoch: bigint, firstSeq: bigint): JobLog {
    const log = new JobLog(jobId, epoch, firstSeq, {
      maxBytes: this.options.maxUnackedLogBytes ?? MAX_UNACKED_LOG_BYTES,
    });
    if (this.maxChunkBytes !== undefined) log.limitChunkBytes(this.maxChunkBytes);
    return log;
  }

  private writeJournal(job: TrackedJob): void {
    try {
      this.journal.write({
        jobId: job.id,
        epoch: job.epoch,
        nextLogSeq: job.log.nextSeq,
        pgid: job.pgid,
        pgidStartTicks: job.pgidStartTicks,
        result: job.result,
      });
    } catch (err) {
      this.logger.error({ job: job.id, err: errorMessage(err) }, "cannot write the job journal");
    }
  }

  /** The job is done with (result confirmed or not wanted): forget it. */
  private forget(job: TrackedJob, reason: string): void {
    this.logger.debug({ job: job.id, epoch: Number(job.epoch), reason }, "job forgotten");
    this.jobs.delete(job.id);
    this.journal.remove(job.id);
    job.log.dispose();
    this.changed.notify();
  }

  /** The server does not want this job (any more): kill it if running, report nothing. */
  private abandon(job: TrackedJob, reason: string): void {
    this.logger.warn({ job: job.id, epoch: Number(job.epoch), reason }, "dropping job");
    job.abandoned = true;
    const run = job.run;
    if (job.state === "running" && run) {
      this.dying.add(run);
      run.requestStop("abandon", DEFAULT_STOP_GRACE_MS, reason);
    }
    this.forget(job, reason);
  }

  /** Bounds the results kept while waiting for confirmation. */
  private pruneUnconfirmed(): void {
    const sent = [...this.jobs.values()].filter((j) => j.state === "finished" && j.resultSentOn !== undefined);
    for (const job of sent.slice(0, Math.max(0, sent.length - MAX_UNCONFIRMED_RESULTS))) {
      this.forget(job, "too many unconfirmed results");
    }
  }
}
