// Builders for agent integration tests: an in-process AgentSession against a FakeAgentServer, with its pino output
// captured (tests assert on it, e.g. that secrets never reach the agent's own log).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { pino } from "pino";
import type { HandlerName } from "../../../agent/src/handler.js";
import { createHandlers, type HandlerBinaries } from "../../../agent/src/handler-registry.js";
import { AgentSession, type SessionOptions } from "../../../agent/src/session.js";
import type { InvocationSchema } from "../../../gen/stackl/v1/documents_pb.js";
import type { JobSpecSchema } from "../../../gen/stackl/v1/jobs_pb.js";
import type { FakeAgentServer } from "../../support/fake-agent-server.js";

export interface TestAgent {
  session: AgentSession;
  stateDir: string;
  workDir: string;
  /** Everything the agent logged (pino JSON lines). */
  logLines: string[];
  /** Runs the session (started by startAgent); rejects if it failed. */
  running: Promise<void>;
  close(): Promise<void>;
}

export interface TestAgentOptions extends Partial<Omit<SessionOptions, "handlers">> {
  handlers?: HandlerName[];
  binaries?: HandlerBinaries;
  /** Reuse an existing state dir (restart scenarios). */
  stateDir?: string;
}

export function startAgent(server: FakeAgentServer, options: TestAgentOptions = {}): TestAgent {
  const stateDir = options.stateDir ?? mkdtempSync(path.join(tmpdir(), "stackl-agent-state-"));
  const workDir = options.workDir ?? path.join(stateDir, "work");
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) logLines.push(line);
      if (process.env.STACKL_TEST_AGENT_LOGS) process.stderr.write(chunk);
      cb();
    },
  });
  const logger = pino({ level: "debug", base: { agent: options.name ?? "test-agent" } }, sink);
  const { handlers: names, binaries, stateDir: _s, ...rest } = options;
  const session = new AgentSession({
    server: server.url,
    name: "test-agent",
    pool: "default",
    labels: { zone: "test" },
    capacity: 4,
    enrollmentToken: server.token,
    backoff: { baseMs: 50, capMs: 1_000 },
    ...rest,
    handlers: createHandlers(names ?? ["shell", "mock"], binaries ?? {}),
    stateDir,
    workDir,
    logger,
  });
  const running = session.run();
  running.catch(() => {});
  return {
    session,
    stateDir,
    workDir,
    logLines,
    running,
    async close() {
      await session.close(500);
      if (!options.stateDir) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Extra JobSpec fields for the builders below. */
export type SpecExtra = Omit<MessageInitShape<typeof JobSpecSchema>, "invocation" | "$typeName"> & {
  invocation?: MessageInitShape<typeof InvocationSchema>;
};

/** A shell job spec. */
export function shellSpec(command: string[], extra: SpecExtra = {}): MessageInitShape<typeof JobSpecSchema> {
  return { action: "create", ...extra, invocation: { tool: "shell", command, ...extra.invocation } };
}

/** A mock job spec. */
export function mockSpec(mock: Record<string, unknown>, extra: SpecExtra = {}): MessageInitShape<typeof JobSpecSchema> {
  return { action: "create", ...extra, invocation: { tool: "mock", mock: mock as JsonObject, ...extra.invocation } };
}
