import { mkdir, rm } from "node:fs/promises";
import type { JsonObject } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import type { JobSpec } from "../../gen/stackl/v1/jobs_pb.js";
import { errorMessage } from "./abort.js";
import type { Handler, LogFn, LogStreamName } from "./handler.js";
import { HandlerError } from "./handler.js";
import { JobStop, type StopKind } from "./job-stop.js";
import { mapOutputs } from "./outputs-spec.js";
import { type MaskingStream, SecretMasker } from "./secret-masker.js";
import { resolveSecrets, type SecretProviders } from "./secret-providers.js";
import { instanceWorkDir, jobScratchDir } from "./work-paths.js";

/**
 * Runs one job: resolves its secrets, masks them in every byte of output, runs the handler under the job's
 * timeout, maps the outputs through the outputs spec and reports the outcome. Stopping (cancel, timeout, shutdown)
 * aborts the handler with a JobStop reason whose grace period the process runner honours.
 */

/** A job's timeout when neither the spec nor the invocation sets one. */
export const DEFAULT_JOB_TIMEOUT_MS = 60 * 60 * 1000;
/** Prefix of every line the agent itself writes to a job's log (the SYSTEM stream). */
export const SYSTEM_PREFIX = "[stackl-agent] ";
/** Grace between SIGTERM and SIGKILL when a job times out. */
export const TIMEOUT_GRACE_MS = 10_000;

export type JobOutcomeName = "succeeded" | "failed" | "cancelled" | "timed_out";

export interface JobReport {
  outcome: JobOutcomeName;
  outputs: JsonObject;
  /** Masked error text ("" on success). */
  error: string;
  exitCode: number;
}

export interface ExecutorOptions {
  handlers: ReadonlyMap<string, Handler>;
  secretProviders: SecretProviders;
  /** The agent's `--work-dir`. */
  workDir: string;
  /** Base environment of job processes. */
  env: Readonly<Record<string, string | undefined>>;
  logger: Logger;
  /** @default DEFAULT_JOB_TIMEOUT_MS */
  defaultTimeoutMs?: number | undefined;
  /** The control plane URL, given to job processes as STACKL_SERVER_URL. @default "" */
  serverUrl?: string | undefined;
}

export interface JobStart {
  id: string;
  epoch: bigint;
  spec: JobSpec;
  /** The offer's deadline; the job times out at the earlier of it and its timeout. */
  deadline?: Date | undefined;
  /** Receives masked output (stdout, stderr and the agent's own lines). */
  log: LogFn;
  /** Called with each process group the job starts. */
  onProcess?: (pid: number) => void;
  /** The offer's job token (given to job processes as STACKL_JOB_TOKEN, masked in logs). @default "" */
  jobToken?: string;
}

/** A job being run. */
export class RunningJob {
  readonly done: Promise<JobReport>;
  private readonly controller = new AbortController();
  private stopped: JobStop | undefined;

  constructor(run: (signal: AbortSignal, job: RunningJob) => Promise<JobReport>) {
    this.done = run(this.controller.signal, this);
  }

  /** The first stop requested, if any. */
  get stop(): JobStop | undefined {
    return this.stopped;
  }

  /** Stops the job (first request wins): SIGTERM to its processes, SIGKILL after `graceMs`. */
  requestStop(kind: StopKind, graceMs: number, reason: string): void {
    if (this.stopped) return;
    this.stopped = new JobStop(kind, graceMs, reason);
    this.controller.abort(this.stopped);
  }
}

/** The timeout of a job: spec.timeout, else invocation.timeout_seconds, else the default; capped by the deadline. */
export function jobTimeoutMs(spec: JobSpec, defaultMs: number, deadline?: Date, now = Date.now()): number {
  let ms = defaultMs;
  if (spec.timeout && durationMs(spec.timeout) > 0) ms = durationMs(spec.timeout);
  else if ((spec.invocation?.timeoutSeconds ?? 0) > 0) ms = spec.invocation!.timeoutSeconds * 1000;
  if (deadline) ms = Math.min(ms, deadline.getTime() - now);
  return Math.max(0, ms);
}

function outcomeOf(stop: JobStop): JobOutcomeName {
  switch (stop.kind) {
    case "timeout":
      return "timed_out";
    case "cancel":
    case "shutdown":
    case "abandon":
      return "cancelled";
    default: {
      const unreachable: never = stop.kind;
      throw new Error(`unknown stop kind ${String(unreachable)}`);
    }
  }
}

export class Executor {
  private readonly defaultTimeoutMs: number;

  constructor(private readonly options: ExecutorOptions) {
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS;
  }

  /** Whether a handler for `tool` is enabled. */
  has(tool: string): boolean {
    return this.options.handlers.has(tool);
  }

  start(job: JobStart): RunningJob {
    return new RunningJob((signal, running) => this.execute(job, signal, running));
  }

  private async execute(job: JobStart, signal: AbortSignal, running: RunningJob): Promise<JobReport> {
    const { spec } = job;
    const logger = this.options.logger.child({ job: job.id, epoch: Number(job.epoch) });
    const masker = new SecretMasker();
    const streams: Record<Exclude<LogStreamName, "system">, MaskingStream> = {
      stdout: masker.stream(),
      stderr: masker.stream(),
    };
    const log: LogFn = (stream, data) => {
      if (stream === "system") {
        // Agent-written text: complete lines, each prefixed, masked as a whole.
        const text = typeof data === "string" ? data : Buffer.from(data).toString("utf8");
        const lines = text.replace(/\n$/, "").split("\n");
        const prefixed = `${lines.map((l) => SYSTEM_PREFIX + l).join("\n")}\n`;
        return job.log("system", Buffer.from(masker.maskString(prefixed)));
      }
      const bytes = typeof data === "string" ? Buffer.from(data) : data;
      const masked = streams[stream].write(bytes);
      if (masked.length === 0) return undefined;
      return job.log(stream, masked);
    };
    const system = (line: string): void | Promise<void> => log("system", line);

    const tool = spec.invocation?.tool ?? "";
    const timeoutMs = jobTimeoutMs(spec, this.defaultTimeoutMs, job.deadline);
    const timer = setTimeout(
      () => running.requestStop("timeout", TIMEOUT_GRACE_MS, `timed out after ${timeoutMs} ms`),
      timeoutMs,
    );
    const jobDir = jobScratchDir(this.options.workDir, job.id, job.epoch);
    const started = Date.now();
    let report: JobReport;
    try {
      await system(
        `job ${job.id} epoch ${job.epoch}: ${tool || "(no tool)"} ${spec.action || "(no action)"}` +
          (spec.stackInstance ? ` for ${spec.stackInstance}/${spec.service}/${spec.functionalRequirement}` : "") +
          (spec.infrastructureTargets.length > 0 ? ` on ${spec.infrastructureTargets.join(", ")}` : ""),
      );
      const handler = this.options.handlers.get(tool);
      if (!handler) throw new HandlerError(`handler "${tool}" is not enabled on this agent`);
      const secrets = await resolveSecrets(spec.secrets, this.options.secretProviders, signal);
      masker.add(secrets.values());
      if (job.jobToken) masker.add([job.jobToken]);
      const workDir = instanceWorkDir(this.options.workDir, job.id, spec);
      await mkdir(workDir, { recursive: true, mode: 0o700 });
      await mkdir(jobDir, { recursive: true, mode: 0o700 });
      signal.throwIfAborted();
      const result = await handler.run({
        id: job.id,
        epoch: job.epoch,
        spec,
        workDir,
        jobDir,
        agentWorkDir: this.options.workDir,
        env: this.options.env,
        secrets,
        signal,
        log,
        logger,
        onProcess: (pid) => job.onProcess?.(pid),
        jobToken: job.jobToken ?? "",
        serverUrl: this.options.serverUrl ?? "",
      });
      signal.throwIfAborted();
      if (result.exitCode !== 0) {
        report = {
          outcome: "failed",
          outputs: mapOutputs(result.outputs, spec.outputsSpec),
          error: masker.maskString(result.error ?? `${tool} exited with code ${result.exitCode}`),
          exitCode: result.exitCode,
        };
      } else {
        report = {
          outcome: "succeeded",
          outputs: mapOutputs(result.outputs, spec.outputsSpec),
          error: "",
          exitCode: 0,
        };
      }
    } catch (err) {
      const stop = running.stop;
      if (stop) {
        report = { outcome: outcomeOf(stop), outputs: {}, error: stop.reason, exitCode: -1 };
      } else {
        if (!(err instanceof HandlerError)) logger.warn({ err: masker.maskString(errorMessage(err)) }, "job failed");
        report = {
          outcome: "failed",
          outputs: {},
          error: masker.maskString(errorMessage(err)),
          exitCode: err instanceof HandlerError ? err.exitCode : -1,
        };
      }
    } finally {
      clearTimeout(timer);
    }
    if (running.stop && report.outcome === "succeeded") {
      // Finished on its own while being stopped: the stop was still requested and honoured.
      report = { outcome: outcomeOf(running.stop), outputs: {}, error: running.stop.reason, exitCode: report.exitCode };
    }
    await rm(jobDir, { recursive: true, force: true }).catch(() => {});
    // Appends happen at once; a returned "buffer full" promise is not awaited here, so a job can always finish.
    for (const [name, stream] of Object.entries(streams)) {
      const rest = stream.end();
      if (rest.length > 0) void job.log(name as "stdout" | "stderr", rest);
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    void system(
      `${report.outcome}` +
        (report.exitCode !== 0 ? ` (exit code ${report.exitCode})` : "") +
        (report.error ? `: ${report.error}` : "") +
        ` after ${seconds} s`,
    );
    logger.info({ outcome: report.outcome, exit_code: report.exitCode, seconds: Number(seconds) }, "job finished");
    return report;
  }
}
