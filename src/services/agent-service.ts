import { durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { AgentService } from "../../gen/stackl/v1/agents_pb.js";
import type { AgentRegistry } from "../agents/agent-registry.js";
import { newEnrollmentToken, secretHash } from "../agents/credentials.js";
import type { JobDispatcher } from "../agents/job-dispatcher.js";
import { validateTarget } from "../agents/job-spec.js";
import { AGENT_DRAIN_SUBJECT, AGENT_REVOKE_SUBJECT, encodeName, subjectFor } from "../agents/subjects.js";
import type { Bus } from "../bus/bus.js";
import { StacklError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import { drainSignalKey } from "../server/context-keys.js";
import { type AgentRepo, newTokenId } from "../store/agent-repo.js";
import type { JobRepo } from "../store/job-repo.js";
import { agentStateFromProto, agentToProto } from "./agent-codec.js";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.js";
import { principalOf } from "./principal.js";

/** Enrollment token validity when the request names none, and the most it may be (DESIGN section 6). */
export const DEFAULT_TOKEN_TTL_MS = 15 * 60_000;
export const MAX_TOKEN_TTL_MS = 60 * 60_000;
export const MIN_TOKEN_TTL_MS = 1_000;
/** Pool of a token whose request names none (the agent's default pool). */
export const DEFAULT_POOL = "default";

export interface AgentServiceDeps {
  agentRepo: AgentRepo;
  jobRepo: JobRepo;
  /** Holds the streams of this replica; `undefined` in processes that accept no agent streams. */
  registry: AgentRegistry;
  dispatcher: JobDispatcher;
  bus: Bus;
  logger: Logger;
}

export function createAgentService(deps: AgentServiceDeps): Partial<ServiceImpl<typeof AgentService>> {
  const { agentRepo, jobRepo, bus } = deps;
  const ring = (prefix: string, name: string, body: unknown): void => {
    try {
      bus.publish(subjectFor(prefix, name), encodeName(JSON.stringify(body)));
    } catch (err) {
      deps.logger.warn({ err, agent: name }, "could not ring an agent doorbell");
    }
  };
  return {
    connect(requests, ctx) {
      return deps.registry.connect(requests, ctx, ctx.values.get(drainSignalKey));
    },

    async listAgents(req, ctx) {
      const limit = pageSize(req.pageSize);
      const after = decodePageToken(req.pageToken, isCursor);
      const rows = await agentRepo.list({
        pool: req.pool,
        states: req.states.map((s, i) => agentStateFromProto(s, `states[${i}]`)),
        limit: limit + 1,
        after: after?.name,
        signal: ctx.signal,
      });
      const page = rows.slice(0, limit);
      const running = await jobRepo.activeJobIds(
        page.map((a) => a.name),
        ctx.signal,
      );
      const last = page.at(-1);
      return {
        agents: page.map((a) => agentToProto(a, running.get(a.name) ?? [])),
        nextPageToken: rows.length > limit && last ? encodePageToken({ name: last.name }) : "",
      };
    },

    async getAgent(req, ctx) {
      const name = requireName(req.name);
      const agent = await agentRepo.get(name, ctx.signal);
      if (agent === undefined) throw StacklError.notFound(`agent ${name}`);
      const running = await jobRepo.activeJobIds([name], ctx.signal);
      return { agent: agentToProto(agent, running.get(name) ?? []) };
    },

    async drainAgent(req, ctx) {
      const name = requireName(req.name);
      const reason = req.reason || `drained by ${principalOf(ctx)}`;
      const agent = await agentRepo.drain(name, reason, ctx.signal);
      ring(AGENT_DRAIN_SUBJECT, name, { name, reason });
      const running = await jobRepo.activeJobIds([name], ctx.signal);
      return { agent: agentToProto(agent, running.get(name) ?? []) };
    },

    async createEnrollmentToken(req, ctx) {
      const pool = req.pool === "" ? DEFAULT_POOL : req.pool;
      validateTarget(pool, "pool");
      if (req.agentName !== "") validateTarget(req.agentName, "agent_name");
      const ttlMs = req.ttl === undefined ? DEFAULT_TOKEN_TTL_MS : durationMs(req.ttl);
      if (ttlMs < MIN_TOKEN_TTL_MS || ttlMs > MAX_TOKEN_TTL_MS) {
        throw StacklError.invalid([{ field: "ttl", message: "must be between 1s and 1h (default 15m)" }]);
      }
      const id = newTokenId();
      const token = newEnrollmentToken(id);
      const created = await agentRepo.createToken(
        {
          id,
          hash: secretHash(token),
          pool,
          agentName: req.agentName === "" ? undefined : req.agentName,
          labels: { ...req.labels },
          ttlMs,
          createdBy: principalOf(ctx),
        },
        ctx.signal,
      );
      deps.logger.info({ token_id: id, pool, agent_name: req.agentName, ttl_ms: ttlMs }, "enrollment token created");
      return { token, tokenId: id, expireTime: timestampFromDate(created.expiresAt) };
    },

    async revokeAgent(req, ctx) {
      const name = requireName(req.name);
      const reason = req.reason || `revoked by ${principalOf(ctx)}`;
      const res = await agentRepo.revoke(name, reason, ctx.signal);
      ring(AGENT_REVOKE_SUBJECT, name, { name, reason });
      for (const target of new Set(res.requeued.map((r) => r.target))) deps.dispatcher.ring(target);
      deps.logger.warn({ agent: name, reason, requeued: res.requeued.map((r) => r.id) }, "agent revoked");
      return { agent: agentToProto(res.agent, []), requeuedJobIds: res.requeued.map((r) => r.id) };
    },
  };
}

function requireName(name: string): string {
  if (name === "") throw StacklError.invalid([{ field: "name", message: "is required" }]);
  return name;
}

function isCursor(v: unknown): v is { name: string } {
  return typeof v === "object" && v !== null && typeof (v as { name?: unknown }).name === "string";
}
