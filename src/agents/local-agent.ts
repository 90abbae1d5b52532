import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
// `stackl dev` runs the SAME agent code as `stackl-agent`, in process (agent/ never imports src/; src/ may start it).
import { CredentialStore } from "../../agent/src/credential-store.js";
import type { HandlerName } from "../../agent/src/handler.js";
import { availableHandlers, createHandlers } from "../../agent/src/handler-registry.js";
import { AgentSession } from "../../agent/src/session.js";
import type { AgentRepo } from "../store/agent-repo.js";
import { newTokenId } from "../store/agent-repo.js";
import { MAX_AGENT_FRAME_BYTES } from "./agent-session.js";
import { newEnrollmentToken, secretHash } from "./credentials.js";

/** Name and pool of the local agent of `stackl dev` (the original STACKL's default agent was `common`). */
export const LOCAL_AGENT_NAME = "common";
export const LOCAL_AGENT_POOL = "common";

export interface LocalAgentOptions {
  /** Registers AgentService (the same implementation the public server uses). */
  routes: (router: ConnectRouter) => void;
  /** Interceptors of the private listener (at least the error mapping). */
  interceptors: Interceptor[];
  agentRepo: AgentRepo;
  /** Holds `credential.json` and the job journal; work dirs go under `<stateDir>/work`. */
  stateDir: string;
  /** URL jobs see as STACKL_SERVER_URL. */
  serverUrl: string;
  logger: Logger;
  /** @default LOCAL_AGENT_NAME */
  name?: string;
  /** @default LOCAL_AGENT_POOL */
  pool?: string;
  /** @default 4 */
  capacity?: number;
}

export interface LocalAgent {
  readonly session: AgentSession;
  /** Stops running jobs (SIGTERM, SIGKILL after `graceMs`), ends the session and the private listener. */
  close(graceMs: number): Promise<void>;
}

/**
 * Starts the in-process agent of `stackl dev`: the real `AgentSession` (agent/src) over a private h2c listener on a
 * Unix socket that serves only AgentService, so it needs no port and works whatever port the API server picks.
 * Enrollment needs no human: when no valid credential is stored, the runtime mints a single-use token for the local
 * agent's name (stored hashed like any other) and hands it over in memory.
 */
export async function startLocalAgent(opts: LocalAgentOptions): Promise<LocalAgent> {
  const name = opts.name ?? LOCAL_AGENT_NAME;
  const pool = opts.pool ?? LOCAL_AGENT_POOL;
  const log = opts.logger;
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  const workDir = path.join(opts.stateDir, "work");
  mkdirSync(workDir, { recursive: true, mode: 0o700 });

  const socketPath = path.join(tmpdir(), `stackl-agent-${process.pid}-${randomBytes(4).toString("hex")}.sock`);
  const adapter = connectNodeAdapter({
    routes: opts.routes,
    interceptors: opts.interceptors,
    readMaxBytes: MAX_AGENT_FRAME_BYTES,
    writeMaxBytes: 4 * 1024 * 1024,
  });
  const server = http2.createServer(adapter);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });

  // A credential is only worth keeping if this database still knows it (the data dir may have been reset).
  const store = new CredentialStore(opts.stateDir);
  let enrollmentToken: string | undefined;
  let stored: string | undefined;
  try {
    stored = store.load()?.agent_credential;
  } catch (err) {
    log.warn({ err: (err as Error).message }, "unreadable local agent credential; enrolling again");
  }
  if (stored === undefined || !(await opts.agentRepo.credentialValid(name, secretHash(stored)))) {
    rmSync(store.file, { force: true });
    const id = newTokenId();
    enrollmentToken = newEnrollmentToken(id);
    await opts.agentRepo.createToken({
      id,
      hash: secretHash(enrollmentToken),
      pool,
      agentName: name,
      labels: { local: "true" },
      ttlMs: 15 * 60_000,
      createdBy: "stackl dev",
    });
  }

  const names: HandlerName[] = [...availableHandlers({}), "mock"];
  const jobBaseEnv: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("STACKL_")) jobBaseEnv[k] = v;
  const session = new AgentSession({
    server: opts.serverUrl,
    name,
    pool,
    labels: { local: "true" },
    capacity: opts.capacity ?? 4,
    handlers: createHandlers(names, {}),
    enrollmentToken,
    stateDir: opts.stateDir,
    workDir,
    logger: log,
    jobEnv: jobBaseEnv,
    http2Options: { createConnection: () => net.connect(socketPath) },
  });
  const running = session.run().catch((err: unknown) => {
    log.error({ err }, "the local agent stopped");
  });
  log.info({ agent: name, pool, handlers: names, state_dir: opts.stateDir }, "local agent started");

  let closing: Promise<void> | undefined;
  return {
    session,
    close(graceMs) {
      closing ??= (async () => {
        await session.close(graceMs).catch((err: unknown) => log.warn({ err }, "closing the local agent failed"));
        await running;
        for (const s of sessions) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        rmSync(socketPath, { force: true });
      })();
      return closing;
    },
  };
}
