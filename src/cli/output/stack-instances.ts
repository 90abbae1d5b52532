/**
 * Stack instances as the client commands print them (`plan`, `create instance`, `get instance[s]`, `outputs`, the
 * live view of `-w`): state and step-status names and colors, the placement explanation of a plan, the step table
 * (STAGE, SERVICE, FR, TARGETS, STATUS, JOB, ERROR), one instance's details, the frames and change lines of the live
 * view, and outputs. Pure: every function returns text.
 */
import { type JsonObject, type JsonValue, toJson } from "@bufbuild/protobuf";
import {
  type Plan,
  PlanSchema,
  type StackInstance,
  StackInstanceSchema,
  StackInstanceState,
  type Step,
  StepStatus,
} from "../../../gen/stackl/v1/stack_instances_pb.js";
import { toYaml } from "./documents.js";
import { PLAIN, type Style } from "./style.js";
import { renderFields, renderTable } from "./table.js";
import { ageOf, formatClock, formatTimestamp } from "./time.js";

// ---------------------------------------------------------------------------------------------------------------------
// States and statuses

export type InstanceStateName = "pending" | "deploying" | "ready" | "failed" | "deleting" | "deleted";

export const INSTANCE_STATE_NAMES: readonly InstanceStateName[] = [
  "pending",
  "deploying",
  "ready",
  "failed",
  "deleting",
  "deleted",
];

const STATE_TO_PROTO: Record<InstanceStateName, StackInstanceState> = {
  pending: StackInstanceState.PENDING,
  deploying: StackInstanceState.DEPLOYING,
  ready: StackInstanceState.READY,
  failed: StackInstanceState.FAILED,
  deleting: StackInstanceState.DELETING,
  deleted: StackInstanceState.DELETED,
};

export function instanceStateToProto(name: InstanceStateName): StackInstanceState {
  return STATE_TO_PROTO[name];
}

/** `pending`, `deploying`, … (`unknown` for UNSPECIFIED or a state added after this client was built). */
export function instanceStateName(state: StackInstanceState): InstanceStateName | "unknown" {
  switch (state) {
    case StackInstanceState.PENDING:
      return "pending";
    case StackInstanceState.DEPLOYING:
      return "deploying";
    case StackInstanceState.READY:
      return "ready";
    case StackInstanceState.FAILED:
      return "failed";
    case StackInstanceState.DELETING:
      return "deleting";
    case StackInstanceState.DELETED:
      return "deleted";
    case StackInstanceState.UNSPECIFIED:
      return "unknown";
    default: {
      const never: never = state;
      void never;
      return "unknown";
    }
  }
}

/** Ready, failed and deleted: no run is going on. */
export function isInstanceTerminal(state: StackInstanceState): boolean {
  return (
    state === StackInstanceState.READY || state === StackInstanceState.FAILED || state === StackInstanceState.DELETED
  );
}

export function instanceStateColor(state: StackInstanceState, style: Style): (text: string) => string {
  switch (state) {
    case StackInstanceState.READY:
      return style.green;
    case StackInstanceState.FAILED:
      return style.red;
    case StackInstanceState.DEPLOYING:
    case StackInstanceState.DELETING:
      return style.cyan;
    case StackInstanceState.DELETED:
      return style.dim;
    case StackInstanceState.PENDING:
    case StackInstanceState.UNSPECIFIED:
      return (text) => text;
    default: {
      const never: never = state;
      return () => String(never);
    }
  }
}

export type StepStatusName = "pending" | "running" | "ready" | "failed" | "skipped" | "cancelled";

export function stepStatusName(status: StepStatus): StepStatusName | "unknown" {
  switch (status) {
    case StepStatus.PENDING:
      return "pending";
    case StepStatus.RUNNING:
      return "running";
    case StepStatus.READY:
      return "ready";
    case StepStatus.FAILED:
      return "failed";
    case StepStatus.SKIPPED:
      return "skipped";
    case StepStatus.CANCELLED:
      return "cancelled";
    case StepStatus.UNSPECIFIED:
      return "unknown";
    default: {
      const never: never = status;
      void never;
      return "unknown";
    }
  }
}

export function stepStatusColor(status: StepStatus, style: Style): (text: string) => string {
  switch (status) {
    case StepStatus.READY:
      return style.green;
    case StepStatus.FAILED:
      return style.red;
    case StepStatus.CANCELLED:
      return style.yellow;
    case StepStatus.RUNNING:
      return style.cyan;
    case StepStatus.SKIPPED:
      return style.dim;
    case StepStatus.PENDING:
    case StepStatus.UNSPECIFIED:
      return (text) => text;
    default: {
      const never: never = status;
      return () => String(never);
    }
  }
}

/** `ready` or `failed: <reason>` (colored). */
export function stateText(instance: Pick<StackInstance, "state" | "reason">, style: Style = PLAIN): string {
  const name = instanceStateColor(instance.state, style)(instanceStateName(instance.state));
  return instance.reason === "" ? name : `${name}: ${instance.reason}`;
}

// ---------------------------------------------------------------------------------------------------------------------
// Steps

/** A stage as the formatters need it (proto `Stage`, or a request's stage). */
export interface StageLike {
  readonly name: string;
  readonly services: readonly string[];
}

/**
 * The STAGE label of each step: the name of the stage listing the step's service when the step really runs at that
 * stage's position (the server's effective stages: stages without any of the steps' services dropped, services listed
 * in no stage in a last stage of their own, all reversed for a teardown), else `#N`, the 1-based position of the
 * step's stage in the run (without stages every service is its own stage, in order).
 */
export function stageLabeler(
  stages: readonly StageLike[],
  steps: readonly Pick<Step, "service">[],
): (step: Pick<Step, "service" | "stageIndex" | "action">) => string {
  const present = new Set(steps.map((s) => s.service));
  const groups = stages
    .map((st) => ({ name: st.name, services: st.services.filter((a) => present.has(a)) }))
    .filter((g) => g.services.length > 0);
  const byAlias = new Map<string, { name: string; position: number }>();
  groups.forEach((g, position) => {
    for (const alias of g.services) if (!byAlias.has(alias)) byAlias.set(alias, { name: g.name, position });
  });
  const unlisted = [...present].some((a) => !byAlias.has(a));
  const count = groups.length + (unlisted ? 1 : 0);
  return (step) => {
    const group = byAlias.get(step.service);
    const expected = group === undefined ? -1 : step.action === "delete" ? count - 1 - group.position : group.position;
    return group !== undefined && expected === step.stageIndex ? group.name : `#${step.stageIndex + 1}`;
  };
}

/** Targets of a step, comma-separated (one for most steps; all of the service's for as_group). */
export function targetsText(step: Pick<Step, "infrastructureTargets">): string {
  return step.infrastructureTargets.join(",");
}

/** What the ERROR column shows: the error, or why the step was skipped. */
export function stepErrorText(step: Pick<Step, "errorMessage" | "skipReason" | "status">): string {
  if (step.errorMessage !== "") return step.errorMessage;
  return step.status === StepStatus.SKIPPED ? step.skipReason : "";
}

const ERROR_MAX = 80;

export interface StepsTableOptions {
  /** Stages of the instance (or the plan's request), to name the STAGE column. */
  stages?: readonly StageLike[];
  style?: Style;
  /** Longest ERROR cell. @default 80 */
  errorWidth?: number;
}

/** STAGE, SERVICE, FR, TARGETS, STATUS, JOB, ERROR: the steps in execution order. */
export function stepsTable(steps: readonly Step[], options: StepsTableOptions = {}): string {
  const style = options.style ?? PLAIN;
  const stage = stageLabeler(options.stages ?? [], steps);
  return renderTable(
    steps,
    [
      { header: "STAGE", value: stage },
      { header: "SERVICE", value: (s) => s.service },
      { header: "FR", value: (s) => s.functionalRequirement },
      { header: "TARGETS", value: targetsText },
      {
        header: "STATUS",
        value: (s) => stepStatusName(s.status) + (s.action === "delete" ? " (delete)" : ""),
        color: (text, s, st) => stepStatusColor(s.status, st)(text),
      },
      { header: "JOB", value: (s) => (s.jobId === "" ? "-" : s.jobId) },
      {
        header: "ERROR",
        value: stepErrorText,
        maxWidth: options.errorWidth ?? ERROR_MAX,
        color: (text, s, st) => (s.status === StepStatus.SKIPPED ? st.dim(text) : st.red(text)),
      },
    ],
    style,
  );
}

/** `8 steps: 3 ready, 1 running, 4 pending` (statuses in vocabulary order, zero counts left out). */
export function stepsSummary(steps: readonly Step[]): string {
  const order = [
    StepStatus.READY,
    StepStatus.RUNNING,
    StepStatus.PENDING,
    StepStatus.FAILED,
    StepStatus.SKIPPED,
    StepStatus.CANCELLED,
    StepStatus.UNSPECIFIED,
  ];
  const parts = order
    .map((status) => [status, steps.filter((s) => s.status === status).length] as const)
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${n} ${stepStatusName(status)}`);
  const total = `${steps.length} step${steps.length === 1 ? "" : "s"}`;
  return parts.length === 0 ? total : `${total}: ${parts.join(", ")}`;
}

// ---------------------------------------------------------------------------------------------------------------------
// One instance, and lists

/** `db → t1, t2; web → t3` in service order. */
export function placementText(instance: Pick<StackInstance, "services" | "serviceOrder">): string {
  const aliases = [
    ...instance.serviceOrder.filter((a) => a in instance.services),
    ...Object.keys(instance.services)
      .filter((a) => !instance.serviceOrder.includes(a))
      .sort(),
  ];
  return aliases
    .map((alias) => {
      const targets = (instance.services[alias]?.targets ?? []).map((t) => t.infrastructureTarget);
      return `${alias} → ${targets.length === 0 ? "(no target)" : targets.join(", ")}`;
    })
    .join("\n");
}

/** Details of one instance (`Key:  value` lines). */
export function instanceDetails(instance: StackInstance, now: number, style: Style = PLAIN): string {
  const when = (ts: StackInstance["createTime"]): string => {
    const text = formatTimestamp(ts);
    return text === "" ? "" : `${text} (${ageOf(ts, now)} ago)`;
  };
  const stateColor = instanceStateColor(instance.state, style);
  return renderFields(
    [
      ["Name", instance.name],
      ["Application", instance.stackApplicationTemplate],
      ["Infrastructure", instance.stackInfrastructureTemplate],
      ["State", stateColor(instanceStateName(instance.state))],
      [
        "Reason",
        instance.reason === ""
          ? ""
          : instance.state === StackInstanceState.FAILED
            ? style.red(instance.reason)
            : instance.reason,
      ],
      ["Generation", instance.generation > 0n ? String(instance.generation) : ""],
      ["Task", instance.taskId],
      ["Created", when(instance.createTime)],
      ["Updated", when(instance.updateTime)],
      ["Services", placementText(instance)],
      ["Steps", instance.steps.length === 0 ? "" : stepsSummary(instance.steps)],
    ],
    style,
  );
}

/** `stackl get instance NAME`: details, then the step table. */
export function instanceView(instance: StackInstance, now: number, style: Style = PLAIN): string {
  const details = instanceDetails(instance, now, style);
  if (instance.steps.length === 0) return details;
  return `${details}\n${stepsTable(instance.steps, { stages: instance.stages, style })}`;
}

function readyCount(steps: readonly Step[]): string {
  if (steps.length === 0) return "0/0";
  const done = steps.filter((s) => s.status === StepStatus.READY || s.status === StepStatus.SKIPPED).length;
  return `${done}/${steps.length}`;
}

/** NAME, APPLICATION, INFRASTRUCTURE, STATE, STEPS (done/total), GEN, AGE, REASON. */
export function instancesTable(instances: readonly StackInstance[], now: number, style: Style = PLAIN): string {
  return renderTable(
    instances,
    [
      { header: "NAME", value: (i) => i.name },
      { header: "APPLICATION", value: (i) => i.stackApplicationTemplate },
      { header: "INFRASTRUCTURE", value: (i) => i.stackInfrastructureTemplate },
      {
        header: "STATE",
        value: (i) => instanceStateName(i.state),
        color: (text, i, s) => instanceStateColor(i.state, s)(text),
      },
      { header: "STEPS", value: (i) => readyCount(i.steps), align: "right" },
      { header: "GEN", value: (i) => String(i.generation), align: "right" },
      { header: "AGE", value: (i) => ageOf(i.createTime, now), align: "right" },
      {
        header: "REASON",
        value: (i) => i.reason,
        maxWidth: 60,
        color: (text, i, s) => instanceStateColor(i.state, s)(text),
      },
    ],
    style,
  );
}

/** Canonical proto JSON of an instance (`-o json`). */
export function instanceJson(instance: StackInstance): JsonValue {
  return toJson(StackInstanceSchema, instance);
}

/** YAML with proto field names (`-o yaml`). */
export function instanceYaml(instance: StackInstance): string {
  return toYaml(toJson(StackInstanceSchema, instance, { useProtoFieldName: true }), "native");
}

// ---------------------------------------------------------------------------------------------------------------------
// Plans

export interface PlanTextOptions {
  /** Stages of the request (or the template), to name the STAGE column. */
  stages?: readonly StageLike[];
  style?: Style;
}

/** One row of the placement table: a chosen target, or one rejection of a candidate. */
interface PlacementRow {
  service: string;
  target: string;
  chosen: boolean;
  phase: string;
  policy: string;
  message: string;
}

function placementRows(plan: Plan): PlacementRow[] {
  const rows: PlacementRow[] = [];
  for (const s of plan.services) {
    const service = s.service === "" || s.service === s.alias ? s.alias : `${s.alias} (${s.service})`;
    for (const target of s.targets) rows.push({ service, target, chosen: true, phase: "", policy: "", message: "" });
    if (s.targets.length === 0 && s.rejections.length === 0) {
      rows.push({ service, target: "(none)", chosen: false, phase: "", policy: "", message: "no target qualifies" });
    }
    for (const r of s.rejections) {
      rows.push({ service, target: r.target, chosen: false, phase: r.phase, policy: r.policy, message: r.message });
    }
  }
  return rows;
}

/** SERVICE, TARGET, RESULT (chosen/rejected), PHASE, POLICY, MESSAGE: every candidate target of every service. */
export function placementTable(plan: Plan, style: Style = PLAIN): string {
  return renderTable(
    placementRows(plan),
    [
      { header: "SERVICE", value: (r) => r.service },
      { header: "TARGET", value: (r) => r.target },
      {
        header: "RESULT",
        value: (r) => (r.chosen ? "chosen" : "rejected"),
        color: (text, r, s) => (r.chosen ? s.green(text) : s.yellow(text)),
      },
      { header: "PHASE", value: (r) => r.phase },
      { header: "POLICY", value: (r) => r.policy },
      { header: "MESSAGE", value: (r) => r.message },
    ],
    style,
  );
}

/** #, STAGE, SERVICE, FR, TARGETS, ACTION, NOTE: the steps a plan would run, in order. */
export function planStepsTable(steps: readonly Step[], options: PlanTextOptions = {}): string {
  const style = options.style ?? PLAIN;
  const stage = stageLabeler(options.stages ?? [], steps);
  return renderTable(
    steps.map((step, i) => ({ step, i })),
    [
      { header: "#", value: ({ i }) => String(i + 1), align: "right" },
      { header: "STAGE", value: ({ step }) => stage(step) },
      { header: "SERVICE", value: ({ step }) => step.service },
      { header: "FR", value: ({ step }) => step.functionalRequirement },
      { header: "TARGETS", value: ({ step }) => targetsText(step) },
      { header: "ACTION", value: ({ step }) => step.action },
      {
        header: "NOTE",
        value: ({ step }) => (step.status === StepStatus.SKIPPED ? `skipped: ${step.skipReason}` : ""),
        color: (text, _r, s) => s.dim(text),
      },
    ],
    style,
  );
}

/** The whole plan: verdict, placement explanation, steps. */
export function planText(plan: Plan, options: PlanTextOptions = {}): string {
  const style = options.style ?? PLAIN;
  const parts: string[] = [];
  const chosen = plan.services.reduce((n, s) => n + s.targets.length, 0);
  const rejected = plan.services.reduce((n, s) => n + s.rejections.length, 0);
  parts.push(
    `${
      plan.fulfilled
        ? `${style.green("fulfilled")}: ${plural(plan.services.length, "service")} placed on ${plural(chosen, "target")}` +
          (rejected > 0 ? ` (${plural(rejected, "rejection")} below)` : "")
        : `${style.red("not fulfilled")}${plan.message === "" ? "" : `: ${plan.message}`}`
    }\n`,
  );
  if (plan.services.length > 0) parts.push(`\n${style.bold("Placement")}\n${placementTable(plan, style)}`);
  if (plan.steps.length > 0) {
    parts.push(`\n${style.bold(`Steps (${plan.steps.length}, in order)`)}\n${planStepsTable(plan.steps, options)}`);
  }
  return parts.join("");
}

export function planJson(plan: Plan): JsonValue {
  return toJson(PlanSchema, plan);
}

export function planYaml(plan: Plan): string {
  return toYaml(toJson(PlanSchema, plan, { useProtoFieldName: true }), "native");
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// ---------------------------------------------------------------------------------------------------------------------
// Outputs

/** `{instance: {...}, services: {alias: {target: {...}}}}` with only the targets that reported outputs. */
export function outputsObject(instance: StackInstance): JsonObject {
  const services: JsonObject = {};
  for (const [alias, placed] of Object.entries(instance.services)) {
    const targets: JsonObject = {};
    for (const t of placed.targets) {
      if (t.outputs !== undefined && Object.keys(t.outputs).length > 0) targets[t.infrastructureTarget] = t.outputs;
    }
    if (Object.keys(targets).length > 0) services[alias] = targets;
  }
  return { instance: instance.instanceOutputs ?? {}, services };
}

function valueText(value: JsonValue | undefined): string {
  return typeof value === "string" ? value : JSON.stringify(value ?? null);
}

/** SERVICE, TARGET, KEY, VALUE: instance outputs first (SERVICE `-`), then per service and target. */
export function outputsTable(instance: StackInstance, style: Style = PLAIN): string {
  const rows: { service: string; target: string; key: string; value: string }[] = [];
  const own = outputsObject(instance);
  for (const [key, value] of Object.entries(instance.instanceOutputs ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    rows.push({ service: "(instance)", target: "", key, value: valueText(value) });
  }
  for (const [alias, targets] of Object.entries(own.services as JsonObject)) {
    for (const [target, outputs] of Object.entries(targets as JsonObject)) {
      for (const [key, value] of Object.entries(outputs as JsonObject).sort(([a], [b]) => a.localeCompare(b))) {
        rows.push({ service: alias, target, key, value: valueText(value) });
      }
    }
  }
  if (rows.length === 0) return "";
  return renderTable(
    rows,
    [
      { header: "SERVICE", value: (r) => r.service },
      { header: "TARGET", value: (r) => r.target },
      { header: "KEY", value: (r) => r.key },
      { header: "VALUE", value: (r) => r.value, maxWidth: 100 },
    ],
    style,
  );
}

// ---------------------------------------------------------------------------------------------------------------------
// Live view (`-w`)

export interface FrameOptions {
  now: number;
  style?: Style;
  /** Shown at the top right, e.g. the command being followed. */
  title?: string;
}

/** One frame of the live view on a terminal: a header line with state, the step table, the step counts. */
export function liveFrame(instance: StackInstance, options: FrameOptions): string {
  const style = options.style ?? PLAIN;
  const header = [
    style.bold(`stack instance ${instance.name}`),
    stateText(instance, style),
    style.dim(
      `generation ${instance.generation}` +
        `${instance.taskId === "" ? "" : `, task ${instance.taskId}`}   ${formatClock(options.now)}`,
    ),
  ].join("   ");
  const table =
    instance.steps.length === 0 ? "(no steps)\n" : stepsTable(instance.steps, { stages: instance.stages, style });
  const summary = instance.steps.length === 0 ? "" : `\n${style.dim(stepsSummary(instance.steps))}\n`;
  return `${options.title === undefined ? "" : `${style.dim(options.title)}\n`}${header}\n\n${table}${summary}`;
}

/** `db/linux @ production.ireland.eu-west-1-a` */
export function stepRef(step: Pick<Step, "service" | "functionalRequirement" | "infrastructureTargets">): string {
  return `${step.service}/${step.functionalRequirement} @ ${targetsText(step)}`;
}

/** `db/linux @ t: running (job J)`, `…: failed: message`, `…: skipped: reason`. */
export function stepLine(step: Step, style: Style = PLAIN): string {
  const status = stepStatusColor(step.status, style)(stepStatusName(step.status));
  const action = step.action === "delete" ? " (delete)" : "";
  const job = step.jobId === "" ? "" : style.dim(` (job ${step.jobId})`);
  const error = stepErrorText(step);
  const tail = error === "" ? "" : `: ${step.status === StepStatus.SKIPPED ? style.dim(error) : style.red(error)}`;
  return `${stepRef(step)}${action}: ${status}${tail}${job}`;
}

/**
 * The lines that describe how `next` differs from `previous` (undefined on the first update): the instance's state
 * (with its reason), a new run (generation), and every step whose status, job or error changed. Printed by the live
 * view when stdout is not a terminal.
 */
export function changeLines(previous: StackInstance | undefined, next: StackInstance, style: Style = PLAIN): string[] {
  const lines: string[] = [];
  const newRun = previous === undefined || previous.generation !== next.generation || previous.taskId !== next.taskId;
  if (newRun) {
    lines.push(
      `${style.bold(next.name)}: ${stateText(next, style)} (generation ${next.generation}` +
        `${next.taskId === "" ? "" : `, task ${next.taskId}`}; ${stepsSummary(next.steps)})`,
    );
  } else if (previous.state !== next.state || previous.reason !== next.reason) {
    lines.push(`${style.bold(next.name)}: ${stateText(next, style)}`);
  }
  const before = new Map((newRun ? [] : previous.steps).map((s) => [s.id, s]));
  for (const step of next.steps) {
    const old = before.get(step.id);
    if (old === undefined) {
      // A new run: pending steps are the plan, printed once as a table by the caller; report only the rest.
      if (step.status !== StepStatus.PENDING) lines.push(stepLine(step, style));
      continue;
    }
    if (
      old.status !== step.status ||
      old.jobId !== step.jobId ||
      old.errorMessage !== step.errorMessage ||
      old.attempts !== step.attempts
    ) {
      lines.push(stepLine(step, style));
    }
  }
  return lines;
}
