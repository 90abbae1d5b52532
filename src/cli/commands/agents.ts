import { create, toJson } from "@bufbuild/protobuf";
import { type Command, InvalidArgumentError, Option } from "commander";
import { type Agent, AgentSchema, AgentState, ListAgentsResponseSchema } from "../../../gen/stackl/v1/agents_pb.js";
import { addClientOptions } from "../client.js";
import {
  type CommandContext,
  EXIT_OK,
  outputOption,
  runClientCommand,
  UNARY_TIMEOUT_MS,
} from "../output/command-context.js";
import { toYaml } from "../output/documents.js";
import { PLAIN, type Style } from "../output/style.js";
import { renderFields, renderTable } from "../output/table.js";
import { ageOf, formatTimestamp } from "../output/time.js";

const AGENT_STATE_NAMES = ["connected", "disconnected", "draining", "revoked"] as const;
type AgentStateName = (typeof AGENT_STATE_NAMES)[number];

const TO_PROTO: Record<AgentStateName, AgentState> = {
  connected: AgentState.CONNECTED,
  disconnected: AgentState.DISCONNECTED,
  draining: AgentState.DRAINING,
  revoked: AgentState.REVOKED,
};

export function agentStateName(state: AgentState): AgentStateName | "unknown" {
  const found = Object.entries(TO_PROTO).find(([, v]) => v === state);
  return found === undefined ? "unknown" : (found[0] as AgentStateName);
}

function stateColor(state: AgentState, style: Style): (text: string) => string {
  switch (state) {
    case AgentState.CONNECTED:
      return style.green;
    case AgentState.DRAINING:
      return style.yellow;
    case AgentState.REVOKED:
      return style.red;
    default:
      return style.dim;
  }
}

function labelsText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** NAME, POOL, STATE, VERSION, JOBS (running/capacity), HEARTBEAT, REPLICA, LABELS. */
export function agentsTable(agents: readonly Agent[], now: number, style: Style = PLAIN): string {
  return renderTable(
    agents,
    [
      { header: "NAME", value: (a) => a.name },
      { header: "POOL", value: (a) => a.pool },
      { header: "STATE", value: (a) => agentStateName(a.state), color: (t, a, s) => stateColor(a.state, s)(t) },
      { header: "VERSION", value: (a) => a.version || "-" },
      { header: "JOBS", value: (a) => `${a.runningJobIds.length}/${a.capacity}`, align: "right" },
      { header: "HEARTBEAT", value: (a) => ageOf(a.lastHeartbeatTime, now), align: "right" },
      { header: "REPLICA", value: (a) => a.replica || "-" },
      { header: "LABELS", value: (a) => labelsText(a.labels), maxWidth: 50 },
    ],
    style,
  );
}

function agentDetails(a: Agent, now: number, style: Style): string {
  const when = (ts: Agent["createTime"]): string => {
    const text = formatTimestamp(ts);
    return text === "" ? "" : `${text} (${ageOf(ts, now)} ago)`;
  };
  return renderFields(
    [
      ["Name", a.name],
      ["Pool", a.pool],
      ["State", stateColor(a.state, style)(agentStateName(a.state))],
      ["Version", a.version],
      ["Handlers", a.handlers.join(", ")],
      ["Capacity", String(a.capacity)],
      ["Running jobs", a.runningJobIds.length === 0 ? "none" : a.runningJobIds.join("\n")],
      ["Labels", labelsText(a.labels)],
      ["Replica", a.replica],
      ["Last heartbeat", when(a.lastHeartbeatTime)],
      ["Connected", when(a.connectTime)],
      ["Enrolled", when(a.createTime)],
    ],
    style,
  );
}

function parseStates(text: string, previous: AgentStateName[] = []): AgentStateName[] {
  const out = [...previous];
  for (const part of text.split(",")) {
    const name = part.trim().toLowerCase();
    if (name === "") continue;
    if (!(AGENT_STATE_NAMES as readonly string[]).includes(name)) {
      throw new InvalidArgumentError(
        `unknown agent state ${JSON.stringify(part)}; expected ${AGENT_STATE_NAMES.join(", ")}`,
      );
    }
    if (!out.includes(name as AgentStateName)) out.push(name as AgentStateName);
  }
  return out;
}

interface ListOptions {
  pool?: string;
  state?: AgentStateName[];
  output?: "table" | "json";
}

/** `stackl agents`, `stackl agent NAME`, `stackl agent revoke|drain NAME`. */
export function register(program: Command): void {
  const list = program
    .command("agents")
    .description("list agents (NAME, POOL, STATE, VERSION, JOBS, HEARTBEAT, REPLICA, LABELS)")
    .option("--pool <pool>", "only agents of this pool")
    .addOption(
      new Option("--state <state>", `only agents in these states (${AGENT_STATE_NAMES.join(", ")})`).argParser(
        parseStates,
      ),
    )
    .addOption(outputOption(["table", "json"], "table"));
  addClientOptions(list);
  list.action((opts: ListOptions) => runClientCommand(list, (ctx) => listAgents(ctx, opts)));

  const show = program
    .command("agent")
    .description("show an agent; `agent revoke NAME` cuts it off, `agent drain NAME` stops new jobs for it")
    .argument("<name>", "agent name (see `stackl agents`)")
    .addOption(outputOption(["text", "yaml", "json"], "text"));
  addClientOptions(show);
  show.action((name: string, opts: { output?: "text" | "yaml" | "json" }) =>
    runClientCommand(show, async (ctx) => {
      const { agent } = await ctx.clients.agents.getAgent(
        { name },
        { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
      );
      if (agent === undefined) throw new Error(`the server returned no agent for ${name}`);
      printAgent(ctx, agent, opts.output ?? "text");
      return EXIT_OK;
    }),
  );
  show
    .command("revoke")
    .description("revoke an agent: its stream is cut at once, its credential refused, its jobs re-queued")
    .argument("<name>", "agent name")
    .option("--reason <text>", "why (recorded)")
    .action((name: string, opts: { reason?: string }) =>
      runClientCommand(show, async (ctx) => {
        const res = await ctx.clients.agents.revokeAgent(
          { name, reason: opts.reason ?? "" },
          { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
        );
        ctx.print(`agent ${name} revoked`);
        ctx.print(res.requeuedJobIds.length > 0 ? `; re-queued jobs: ${res.requeuedJobIds.join(", ")}\n` : "\n");
        return EXIT_OK;
      }),
    );
  show
    .command("drain")
    .description("drain an agent: no new jobs; its running jobs finish, then it disconnects")
    .argument("<name>", "agent name")
    .option("--reason <text>", "why (recorded)")
    .action((name: string, opts: { reason?: string }) =>
      runClientCommand(show, async (ctx) => {
        const { agent } = await ctx.clients.agents.drainAgent(
          { name, reason: opts.reason ?? "" },
          { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
        );
        const running = agent?.runningJobIds.length ?? 0;
        ctx.print(
          `agent ${name} draining${running > 0 ? ` (${running} job${running === 1 ? "" : "s"} to finish)` : ""}\n`,
        );
        return EXIT_OK;
      }),
    );
}

function printAgent(ctx: CommandContext, agent: Agent, output: "text" | "yaml" | "json"): void {
  switch (output) {
    case "text":
      ctx.print(agentDetails(agent, ctx.now(), ctx.style));
      break;
    case "yaml":
      ctx.print(toYaml(toJson(AgentSchema, agent), "native"));
      break;
    case "json":
      ctx.print(`${JSON.stringify(toJson(AgentSchema, agent), null, 2)}\n`);
      break;
  }
}

async function listAgents(ctx: CommandContext, opts: ListOptions): Promise<number> {
  const found: Agent[] = [];
  let pageToken = "";
  do {
    const page = await ctx.clients.agents.listAgents(
      { pool: opts.pool ?? "", states: (opts.state ?? []).map((s) => TO_PROTO[s]), pageSize: 1000, pageToken },
      { signal: ctx.signal, timeoutMs: UNARY_TIMEOUT_MS },
    );
    found.push(...page.agents);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  if (opts.output === "json") {
    ctx.print(
      `${JSON.stringify(toJson(ListAgentsResponseSchema, create(ListAgentsResponseSchema, { agents: found })), null, 2)}\n`,
    );
    return EXIT_OK;
  }
  if (found.length === 0) {
    ctx.warn("No agents found. Enroll one: stackl token create --pool <pool>, then stackl-agent --token <token>\n");
    return EXIT_OK;
  }
  ctx.print(agentsTable(found, ctx.now(), ctx.style));
  return EXIT_OK;
}
