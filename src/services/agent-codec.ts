import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Agent, AgentSchema, AgentState } from "../../gen/stackl/v1/agents_pb.js";
import { StacklError } from "../errors.js";
import type { AgentRow, AgentState as StoredAgentState } from "../store/agent-repo.js";

export const AGENT_STATE_TO_PROTO: Record<StoredAgentState, AgentState> = {
  connected: AgentState.CONNECTED,
  disconnected: AgentState.DISCONNECTED,
  draining: AgentState.DRAINING,
  revoked: AgentState.REVOKED,
};

export function agentStateFromProto(state: AgentState, field: string): StoredAgentState {
  const found = Object.entries(AGENT_STATE_TO_PROTO).find(([, v]) => v === state);
  if (found === undefined) throw StacklError.invalid([{ field, message: `unknown agent state ${state}` }]);
  return found[0] as StoredAgentState;
}

export function agentToProto(a: AgentRow, runningJobIds: string[] = []): Agent {
  const ts = (d: Date | null) => (d === null ? undefined : timestampFromDate(d));
  return create(AgentSchema, {
    name: a.name,
    pool: a.pool,
    labels: a.labels,
    version: a.version,
    handlers: a.handlers,
    capacity: a.capacity,
    runningJobIds,
    state: AGENT_STATE_TO_PROTO[a.state],
    lastHeartbeatTime: ts(a.lastHeartbeatAt),
    connectTime: ts(a.connectedAt),
    createTime: ts(a.createdAt),
    replica: a.replica ?? "",
  });
}
