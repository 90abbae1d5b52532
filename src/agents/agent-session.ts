import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  type ConnectRequest,
  type ConnectResponse,
  ConnectResponseSchema,
  type Hello,
  JobOutcome,
  type JobResult,
} from "../../gen/stackl/v1/agents_pb.js";
import type { LogChunk } from "../../gen/stackl/v1/jobs_pb.js";
import { ErrorCode, isStacklError, StacklError } from "../errors.js";
import type { AgentRepo, OpenedSession } from "../store/agent-repo.js";
import type { ClaimedJob, JobRepo, JobResultInput } from "../store/job-repo.js";
import type { AgentsConfig } from "./agents-config.js";
import { newAgentCredential, secretHash } from "./credentials.js";
import { DEFAULT_CANCEL_GRACE_MS } from "./job-dispatcher.js";
import { specFromJson } from "./job-spec.js";

/** A stream must open with Hello within this time. */
export const HELLO_TIMEOUT_MS = 10_000;
/** Largest frame the server accepts from an agent (DESIGN section 6); announced in Welcome. */
export const MAX_AGENT_FRAME_BYTES = 1024 * 1024;
/** Most concurrent jobs an agent may announce. */
export const MAX_AGENT_CAPACITY = 1024;
/** After a decline, the agent is not offered the same job again for this long. */
export const DECLINE_COOLDOWN_MS = 2_000;
/** Pause before claiming again after a failed claim (database trouble). */
export const CLAIM_RETRY_MS = 1_000;

const NAME = /^[^\s\p{Cc}]{1,253}$/u;

/** What a session needs from its replica. */
export interface SessionHost {
  readonly agentRepo: AgentRepo;
  readonly jobRepo: JobRepo;
  readonly config: AgentsConfig;
  readonly replica: string;
  readonly logger: Logger;
  /** Registers the session (ending an older local session of the same agent) and announces it to other replicas. */
  attach(session: AgentStreamSession): void;
  /** Runs session database work (claims, the disconnect) under the replica's concurrency limit. */
  limit<T>(fn: () => Promise<T>): Promise<T>;
  detach(session: AgentStreamSession): void;
  /**
   * Rings the "claimable jobs" doorbell for a target (other agents may take jobs this one gave back); `from`, the
   * session giving them back, is not woken locally.
   */
  ring(target: string, from?: AgentStreamSession): void;
}

type Held = { epoch: number; state: "offered" | "running"; cancelSent: boolean };

/** Queue of messages to the agent: control messages in order, then log acks coalesced per job (highest seq). */
class Outbox {
  private readonly queue: ConnectResponse[] = [];
  private readonly acks = new Map<string, bigint>();
  private wake: (() => void) | undefined;
  private ending: { error: unknown } | undefined;
  private aborted: { error: unknown } | undefined;

  push(msg: MessageInitShape<typeof ConnectResponseSchema>): void {
    this.queue.push(create(ConnectResponseSchema, msg));
    this.poke();
  }

  ack(jobId: string, seq: bigint): void {
    const prev = this.acks.get(jobId);
    if (prev === undefined || seq > prev) this.acks.set(jobId, seq);
    this.poke();
  }

  /** Ends the stream after what is queued (`error` undefined = a normal end). */
  end(error?: unknown): void {
    this.ending ??= { error };
    this.poke();
  }

  /** Ends the stream now, dropping what is queued. */
  abort(error: unknown): void {
    this.aborted ??= { error };
    this.poke();
  }

  get done(): boolean {
    return this.ending !== undefined || this.aborted !== undefined;
  }

  /** The next message; `undefined` when the stream should end normally; throws the error it should end with. */
  async next(signal: AbortSignal): Promise<ConnectResponse | undefined> {
    for (;;) {
      if (this.aborted !== undefined) return this.finish(this.aborted.error);
      const msg = this.queue.shift();
      if (msg !== undefined) return msg;
      const first = this.acks.entries().next();
      if (!first.done) {
        const [jobId, seq] = first.value;
        this.acks.delete(jobId);
        return create(ConnectResponseSchema, { msg: { case: "logAck", value: { jobId, seq } } });
      }
      if (this.ending !== undefined) return this.finish(this.ending.error);
      signal.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          this.wake = undefined;
          reject(signal.reason);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        this.wake = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
      });
    }
  }

  private finish(error: unknown): undefined {
    if (error !== undefined) throw error;
    return undefined;
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

/**
 * One agent's stream on this replica (AgentService.Connect; protocol in agents.proto, DESIGN section 4, and
 * `src/agents/README.md`). Created after the Hello authenticated; lives until the stream ends.
 *
 * States: `open` (welcomed, offering), `draining` (no offers; the agent finishes and half-closes), `closed`.
 */
export class AgentStreamSession {
  readonly name: string;
  readonly pool: string;
  readonly capacity: number;
  readonly handlers: string[];
  /** When the agent last sent anything (ms since epoch). */
  lastSeen = Date.now();
  /** `lastSeen` as recorded by the last heartbeat flush. */
  flushedSeen = 0;
  private readonly outbox = new Outbox();
  private readonly held = new Map<string, Held>();
  private readonly declined = new Map<string, number>();
  private readonly log: Logger;
  private draining: boolean;
  private closed = false;
  private pumping = false;
  private pumpAgain = false;
  /** Called when a claim took all the session could take (more jobs may be waiting for other agents). */
  private onFull: (() => void) | undefined;
  /** Handler set, as a key: sessions with the same key can take the same jobs. */
  readonly handlerKey: string;
  private retryTimer: NodeJS.Timeout | undefined;
  private resolveClosed!: () => void;
  /** Resolves once the session's cleanup (database included) is done. */
  readonly closedPromise = new Promise<void>((resolve) => {
    this.resolveClosed = resolve;
  });

  constructor(
    private readonly host: SessionHost,
    opened: OpenedSession,
    /** The session id recorded on the agent row (fences claims and the disconnect). */
    readonly id: string,
  ) {
    this.name = opened.agent.name;
    this.pool = opened.agent.pool;
    this.capacity = opened.agent.capacity;
    this.handlers = opened.agent.handlers;
    this.handlerKey = this.handlers.join(",");
    this.draining = opened.agent.state === "draining";
    this.log = host.logger.child({ agent: this.name, session: this.id });
    for (const r of opened.resumed) this.held.set(r.id, { epoch: r.epoch, state: "running", cancelSent: false });
  }

  /** Jobs this session holds (offered or running). */
  get jobIds(): string[] {
    return [...this.held.keys()];
  }

  holds(jobId: string): boolean {
    return this.held.has(jobId);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** True while the session would claim jobs if woken (open, not draining, below capacity). */
  get canTakeJobs(): boolean {
    return !this.closed && !this.draining && !this.outbox.done && this.held.size < this.capacity;
  }

  /**
   * Wakes the claim loop (a doorbell for this agent's name or pool, or freed capacity). `onFull` is called if the
   * claim took as many jobs as the session had room for: more may be waiting, for another agent to take.
   */
  wakePump(onFull?: () => void): void {
    if (this.closed) return;
    if (onFull !== undefined) this.onFull = onFull;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    void this.pump();
  }

  /** Tells the agent to cancel a job it holds (from the cancel doorbell or the reconcile loop). */
  cancel(jobId: string, epoch: number, graceMs: number | null, reason: string | null): void {
    const h = this.held.get(jobId);
    if (this.closed || h === undefined || h.epoch !== epoch || h.cancelSent) return;
    h.cancelSent = true;
    this.log.info({ job: jobId, epoch, grace_ms: graceMs }, "sending cancel");
    this.outbox.push({
      msg: {
        case: "jobCancel",
        value: {
          jobId,
          epoch: BigInt(epoch),
          grace: durationFromMs(graceMs ?? DEFAULT_CANCEL_GRACE_MS),
          reason: reason ?? "",
        },
      },
    });
  }

  /** DrainAgent: no new offers; the agent finishes its jobs and disconnects. */
  drain(reason: string): void {
    if (this.closed || this.draining) return;
    this.draining = true;
    this.log.info({ reason }, "draining agent");
    this.outbox.push({ msg: { case: "drain", value: { reason } } });
  }

  /** RevokeAgent: tell the agent to drop every job (they were re-queued), then cut the stream. */
  revoke(reason: string): void {
    if (this.closed) return;
    this.log.warn({ reason, jobs: this.jobIds }, "agent revoked: cutting its stream");
    for (const [jobId, h] of this.held) {
      this.outbox.push({
        msg: { case: "rejected", value: { jobId, epoch: BigInt(h.epoch), reason: "the agent was revoked" } },
      });
    }
    this.held.clear();
    this.outbox.end(
      new ConnectError(`agent ${this.name} was revoked${reason ? `: ${reason}` : ""}`, Code.PermissionDenied),
    );
  }

  /** Ends the stream at once with `error` (superseded, silent too long, replica shutting down). */
  terminate(error: ConnectError): void {
    if (this.closed || this.outbox.done) return;
    this.log.info({ code: Code[error.code], reason: error.rawMessage }, "ending agent stream");
    this.outbox.abort(error);
  }

  /** Runs the stream: Welcome, then messages until it ends; then the cleanup. */
  async *run(
    opened: OpenedSession,
    credential: string | undefined,
    requests: AsyncIterator<ConnectRequest>,
    ctx: HandlerContext,
    drainSignal: AbortSignal,
  ): AsyncGenerator<ConnectResponse> {
    const { config } = this.host;
    const stop = AbortSignal.any([ctx.signal, drainSignal]);
    const onDrain = (): void =>
      this.terminate(new ConnectError("the server is shutting down; reconnect to another replica", Code.Unavailable));
    drainSignal.addEventListener("abort", onDrain, { once: true });
    if (drainSignal.aborted) onDrain();
    this.host.attach(this);
    try {
      yield create(ConnectResponseSchema, {
        msg: {
          case: "welcome",
          value: {
            sessionId: this.id,
            heartbeatInterval: durationFromMs(config.heartbeatMs),
            disconnectAfter: durationFromMs(config.disconnectAfterMs),
            agentCredential: credential ?? "",
            resume: opened.decisions.map((d) => ({
              jobId: d.jobId,
              epoch: BigInt(d.epoch),
              resume: d.resume,
              reason: d.reason,
              nextLogSeq: BigInt(d.nextLogSeq),
            })),
            maxFrameBytes: MAX_AGENT_FRAME_BYTES,
          },
        },
      });
      this.log.info(
        {
          pool: this.pool,
          capacity: this.capacity,
          enrolled: opened.enrolled,
          resumed: opened.resumed.map((r) => r.id),
          refused: opened.decisions.filter((d) => !d.resume).map((d) => d.jobId),
          draining: this.draining,
        },
        "agent connected",
      );
      for (const r of opened.resumed)
        if (r.cancel !== null) this.cancel(r.id, r.epoch, r.cancel.graceMs, r.cancel.reason);
      if (this.draining) this.outbox.push({ msg: { case: "drain", value: { reason: "drain requested" } } });
      for (const target of opened.requeuedTargets) this.host.ring(target);
      void this.read(requests);
      this.wakePump();
      for (;;) {
        const msg = await this.outbox.next(stop);
        if (msg === undefined) return;
        yield msg;
      }
    } finally {
      drainSignal.removeEventListener("abort", onDrain);
      await this.cleanup();
    }
  }

  private async cleanup(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.host.detach(this);
    try {
      const current = await this.host.limit(() => this.host.agentRepo.closeSession(this.name, this.id));
      this.log.info({ jobs: this.jobIds, superseded: !current }, "agent disconnected");
    } catch (err) {
      this.log.warn({ err }, "could not record the disconnect (the sweeper will, from the missing heartbeats)");
    } finally {
      this.resolveClosed();
    }
  }

  /** Reads the agent's messages one at a time: the next is read only after the previous one is persisted. */
  private async read(requests: AsyncIterator<ConnectRequest>): Promise<void> {
    try {
      for (;;) {
        const r = await requests.next();
        if (r.done) {
          this.log.debug("the agent closed its side of the stream");
          this.outbox.end();
          return;
        }
        this.lastSeen = Date.now();
        if (this.outbox.done) continue;
        await this.handle(r.value);
      }
    } catch (err) {
      if (this.closed || this.outbox.done) return;
      if (isStacklError(err) && err.code !== ErrorCode.Internal) {
        this.log.warn({ err: err.message, code: err.code }, "ending the stream: could not process an agent message");
        this.outbox.abort(
          new ConnectError(
            `${err.message} (reconnect: the job resumes from what was persisted)`,
            err.code === ErrorCode.InvalidArgument ? Code.InvalidArgument : Code.Unavailable,
          ),
        );
      } else if (err instanceof ConnectError) {
        this.outbox.abort(err);
      } else {
        this.log.error({ err }, "ending the stream: unexpected error");
        this.outbox.abort(new ConnectError("internal error processing an agent message", Code.Internal));
      }
    }
  }

  private async handle(req: ConnectRequest): Promise<void> {
    const m = req.msg;
    switch (m.case) {
      case "heartbeat":
        await this.onHeartbeat(m.value.jobs.map((j) => ({ id: j.jobId, epoch: Number(j.epoch) })));
        return;
      case "jobAccepted":
        return this.onAccepted(m.value.jobId, Number(m.value.epoch));
      case "jobDeclined":
        return this.onDeclined(m.value.jobId, Number(m.value.epoch), m.value.reason);
      case "logChunk":
        return this.onLogChunk(m.value);
      case "jobResult":
        return this.onResult(m.value);
      case "hello":
        throw StacklError.invalid([{ field: "hello", message: "Hello is only accepted as the first message" }]);
      case undefined:
        return;
      default: {
        const never: never = m;
        throw new Error(`unknown agent message ${String(never)}`);
      }
    }
  }

  private reject(jobId: string, epoch: number, reason: string): void {
    this.log.info({ job: jobId, epoch, reason }, "rejecting a stale write");
    const h = this.held.get(jobId);
    if (h !== undefined && h.epoch === epoch) this.held.delete(jobId);
    this.outbox.push({ msg: { case: "rejected", value: { jobId, epoch: BigInt(epoch), reason } } });
  }

  private async onHeartbeat(jobs: { id: string; epoch: number }[]): Promise<void> {
    const unknown = jobs.filter((j) => this.held.get(j.id)?.epoch !== j.epoch);
    if (unknown.length === 0) return;
    const rows = new Map((await this.host.jobRepo.getMany(unknown.map((j) => j.id))).map((r) => [r.id, r]));
    for (const j of unknown) {
      const row = rows.get(j.id);
      const mine = row !== undefined && row.agent === this.name && row.epoch === j.epoch;
      if (mine && (row.state === "offered" || row.state === "running")) {
        this.held.set(j.id, { epoch: j.epoch, state: row.state, cancelSent: false });
        continue;
      }
      if (mine) continue; // finished at this epoch; the result is on its way
      this.reject(j.id, j.epoch, row === undefined ? "unknown job" : `the job is at epoch ${row.epoch} (${row.state})`);
    }
  }

  private async onAccepted(jobId: string, epoch: number): Promise<void> {
    if (await this.host.jobRepo.markRunning(jobId, epoch, this.name)) {
      const h = this.held.get(jobId);
      if (h !== undefined && h.epoch === epoch) h.state = "running";
      else this.held.set(jobId, { epoch, state: "running", cancelSent: false });
      this.log.debug({ job: jobId, epoch }, "job accepted");
      return;
    }
    this.reject(jobId, epoch, "the offer is no longer valid");
  }

  private async onDeclined(jobId: string, epoch: number, reason: string): Promise<void> {
    this.log.info({ job: jobId, epoch, reason }, "job declined");
    const h = this.held.get(jobId);
    if (h !== undefined && h.epoch === epoch) this.held.delete(jobId);
    this.declined.set(jobId, Date.now() + DECLINE_COOLDOWN_MS);
    const target = await this.host.jobRepo.decline(jobId, epoch, this.name);
    if (target !== undefined) this.host.ring(target, this);
    this.wakePump();
  }

  private async onLogChunk(chunk: LogChunk): Promise<void> {
    const seq = Number(chunk.seq);
    const epoch = Number(chunk.epoch);
    if (seq < 1) throw StacklError.invalid([{ field: "log_chunk.seq", message: "must be 1 or more" }]);
    const res = await this.host.jobRepo.appendLog(
      {
        jobId: chunk.jobId,
        seq,
        stream: chunk.stream,
        data: chunk.data,
        epoch,
        time: chunk.time === undefined ? new Date() : timestampDate(chunk.time),
      },
      this.name,
    );
    switch (res.kind) {
      case "persisted":
        this.outbox.ack(chunk.jobId, BigInt(res.seq));
        return;
      case "duplicate":
        this.outbox.ack(chunk.jobId, BigInt(res.lastSeq));
        return;
      case "stale":
        this.reject(
          chunk.jobId,
          epoch,
          res.job === undefined ? "unknown job" : `the job is at epoch ${res.job.epoch} (${res.job.state})`,
        );
        return;
      case "gap":
        // Cannot happen with an in-order agent on one stream; reconnecting resumes from what was persisted.
        throw new StacklError(
          ErrorCode.FailedPrecondition,
          `log chunk ${seq} of job ${chunk.jobId} does not follow the persisted ${res.lastSeq}`,
        );
      default: {
        const never: never = res;
        throw new Error(`unknown outcome ${String(never)}`);
      }
    }
  }

  private async onResult(r: JobResult): Promise<void> {
    const epoch = Number(r.epoch);
    const result: JobResultInput = {
      outcome: outcomeOf(r.outcome),
      outputs: (r.outputs ?? {}) as JsonObject,
      error: r.outcome === JobOutcome.UNSPECIFIED ? `the agent reported no outcome: ${r.error}` : r.error,
      exitCode: r.exitCode,
      lastLogSeq: Number(r.lastLogSeq),
    };
    const res = await this.host.jobRepo.finish(r.jobId, epoch, this.name, result);
    switch (res.kind) {
      case "recorded":
        this.held.delete(r.jobId);
        if (res.job.lastLogSeq < result.lastLogSeq) {
          this.log.warn(
            { job: r.jobId, epoch, persisted: res.job.lastLogSeq, reported: result.lastLogSeq },
            "result recorded with log chunks missing",
          );
        }
        this.log.info({ job: r.jobId, epoch, state: res.job.state, exit_code: r.exitCode }, "job finished");
        this.outbox.ack(r.jobId, r.lastLogSeq);
        this.wakePump();
        return;
      case "duplicate":
        this.held.delete(r.jobId);
        this.outbox.ack(r.jobId, r.lastLogSeq);
        return;
      case "stale":
        this.reject(
          r.jobId,
          epoch,
          res.job === undefined ? "unknown job" : `the job is at epoch ${res.job.epoch} (${res.job.state})`,
        );
        return;
      default: {
        const never: never = res;
        throw new Error(`unknown outcome ${String(never)}`);
      }
    }
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        if (this.closed || this.draining || this.outbox.done) return;
        const free = this.capacity - this.held.size;
        if (free <= 0) return;
        const now = Date.now();
        for (const [id, until] of this.declined) if (until <= now) this.declined.delete(id);
        const onFull = this.onFull;
        this.onFull = undefined;
        const claimed = await this.host.limit(() =>
          this.host.jobRepo.claim({
            agent: this.name,
            sessionId: this.id,
            targets: this.name === this.pool ? [this.name] : [this.name, this.pool],
            tools: this.handlers,
            limit: free,
            exclude: [...this.declined.keys()],
          }),
        );
        for (const c of claimed) this.offer(c);
        if (claimed.length >= free) onFull?.();
      } while (this.pumpAgain);
    } catch (err) {
      if (!this.closed) {
        this.log.warn({ err }, "claiming jobs failed; retrying");
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.wakePump(), CLAIM_RETRY_MS);
      }
    } finally {
      this.pumping = false;
    }
  }

  private offer(c: ClaimedJob): void {
    const { job } = c;
    if (this.closed || this.outbox.done) return; // the lease of the offered job covers it: the agent never got it
    this.held.set(job.id, { epoch: job.epoch, state: "offered", cancelSent: false });
    this.log.info({ job: job.id, epoch: job.epoch, attempt: job.attempt, tool: job.tool }, "offering job");
    this.outbox.push({
      msg: {
        case: "jobOffer",
        value: {
          jobId: job.id,
          epoch: BigInt(job.epoch),
          spec: specFromJson(job.spec),
          deadline: timestampFromMs(Date.now() + job.timeoutMs),
          jobToken: c.jobToken,
          nextLogSeq: BigInt(job.lastLogSeq + 1),
        },
      },
    });
  }
}

function outcomeOf(outcome: JobOutcome): JobResultInput["outcome"] {
  switch (outcome) {
    case JobOutcome.SUCCEEDED:
      return "succeeded";
    case JobOutcome.CANCELLED:
      return "cancelled";
    case JobOutcome.TIMED_OUT:
      return "timed_out";
    case JobOutcome.FAILED:
    case JobOutcome.UNSPECIFIED:
      return "failed";
    default: {
      const never: never = outcome;
      void never;
      return "failed";
    }
  }
}

/** Checks a Hello and turns it into the session's opening request (authentication happens in the repository). */
export function openRequest(
  hello: Hello,
  host: Pick<SessionHost, "replica">,
  sessionId: string,
): { input: Parameters<AgentRepo["openSession"]>[0]; credential: string | undefined } {
  if (!NAME.test(hello.name)) {
    throw StacklError.invalid([{ field: "hello.name", message: "must be 1-253 characters without spaces" }]);
  }
  if (hello.pool !== "" && !NAME.test(hello.pool)) {
    throw StacklError.invalid([{ field: "hello.pool", message: "must be 1-253 characters without spaces" }]);
  }
  let auth: Parameters<AgentRepo["openSession"]>[0]["auth"];
  let credential: string | undefined;
  switch (hello.credential.case) {
    case "agentCredential":
      if (hello.credential.value === "") throw new StacklError(ErrorCode.Unauthenticated, "empty agent credential");
      auth = { kind: "credential", hash: secretHash(hello.credential.value) };
      break;
    case "enrollmentToken":
      if (hello.credential.value === "") throw new StacklError(ErrorCode.Unauthenticated, "empty enrollment token");
      credential = newAgentCredential();
      auth = { kind: "token", hash: secretHash(hello.credential.value), credentialHash: secretHash(credential) };
      break;
    case undefined:
      throw new StacklError(
        ErrorCode.Unauthenticated,
        "Hello carries no credential: present the agent credential, or an enrollment token to enroll",
      );
    default: {
      const never: never = hello.credential;
      throw new Error(`unknown credential ${String(never)}`);
    }
  }
  return {
    credential,
    input: {
      name: hello.name,
      pool: hello.pool,
      labels: { ...hello.labels },
      version: hello.version,
      handlers: [...new Set(hello.handlers)].sort(),
      capacity: Math.min(MAX_AGENT_CAPACITY, Math.max(1, hello.maxConcurrentJobs || 1)),
      jobsInFlight: hello.jobsInFlight.map((j) => ({
        jobId: j.jobId,
        epoch: Number(j.epoch),
        nextLogSeq: Number(j.nextLogSeq),
        finished: j.finished,
      })),
      auth,
      replica: host.replica,
      sessionId,
    },
  };
}
