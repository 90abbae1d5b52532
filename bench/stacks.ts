/**
 * Stack placement and orchestration (issue 6). Prints Markdown tables (stdout; progress on stderr); asserts only
 * that the plans are fulfilled.
 *
 *   (a) plan time: planStack (placement with the real built-in bundles and opa-compiled policy templates, step
 *       planning, decision records) on documents built in memory and loaded with the real loadStack, for
 *       100 services × 1,000 targets and 1,000 services × 10,000 targets; and PlanStackInstance through the API of an
 *       embedded server (the `stackl dev` runtime on PGlite) for 100 × 1,000;
 *   (b) policy evaluations per second (contract wrappers, in process): orchestration grouped entrypoints on a small
 *       and a medium estate, a user SAT and SIT policy (older Rego syntax, compiled by opa) on the medium input,
 *       authz;
 *   (c) CreateStackInstance → every step's job created, for an instance of 100 services in one stage (all dispatched
 *       in parallel, a `mock` invocation) on the embedded default with its in-process agent.
 *
 * The estates are realistic rather than uniform: targets are environment × location × zone (10 × 10 × N), one
 * environment of ten is tagged `staging` (rejected by the required tag), zones have 16–128 GB of memory so the
 * larger of 4 resource profiles reject 10–30 % of targets; services reference 20 service documents; some have 2 or
 * 3 replicas, 3 are constrained by a SAT policy, 1 gets SAT outputs, 2 % of zones carry a SIT policy and a
 * service document in 20 has two service policies.
 *
 *   npx tsx bench/stacks.ts [--quick] [--runs N] [--seconds S]
 *
 * --quick skips 1,000 × 10,000 and shortens everything (~30 s). Needs the opa CLI (scripts/tools.sh opa; found on
 * PATH or in the tools cache).
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { create, fromJson, type JsonObject, toBinary } from "@bufbuild/protobuf";
import { ListValueSchema, timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type Document, DocumentSchema, DocumentService, type PolicyTemplate } from "../gen/stackl/v1/documents_pb.js";
import { JobService } from "../gen/stackl/v1/jobs_pb.js";
import { PlanSchema, StackInstanceService, StackInstanceState } from "../gen/stackl/v1/stack_instances_pb.js";
import { buildOpaInput, type PlacementRequest } from "../src/domain/stack/placement.js";
import { builtinBundle } from "../src/policy/builtin-policies.js";
import { authorize, satPolicySolutions, sitPolicyInfringements, withSortHints } from "../src/policy/contracts.js";
import { findOpa } from "../src/policy/opa-cli.js";
import { EncodedInput, PolicyEngine, spliceInput } from "../src/policy/policy-engine.js";
import { compileRegoPolicy } from "../src/policy/rego-compiler.js";
import { kindKey, kindOfDocument, specToJson } from "../src/services/document-codec.js";
import { loadStack, type StackRequest } from "../src/stacks/stack-loader.js";
import { planStack } from "../src/stacks/stack-planner.js";
import type { DocumentRepo, StoredDocument } from "../src/store/document-repo.js";
import { startRuntimeServer } from "../test/support/runtime-server.js";
import { machineLine } from "./lib/machine.js";
import { fmtMs, fmtRate } from "./lib/stats.js";
import { printTable, progress } from "./lib/table.js";

const args = process.argv.slice(2);
const QUICK = args.includes("--quick");
const numArg = (name: string, d: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const RUNS = numArg("--runs", QUICK ? 2 : 5);
const SECONDS = numArg("--seconds", QUICK ? 0.5 : 1.5);

// ---------------------------------------------------------------------------------------------------------------
// Documents

export const SAT_KEEP_OUT = `package keep_out_of_location

solutions = {"fulfilled": true, "targets": targets} {
  targets := [t | input.infrastructure_targets[t]; not contains(t, input.parameters.location)]
}
`;
export const SAT_LABELS = `package label_racks

solutions = {"fulfilled": true, "targets": targets} {
  targets := [{"target": t, "rack": concat("-", ["rack", t])} | input.infrastructure_targets[t]]
}
`;
export const SIT_NO_FORBIDDEN = `package no_forbidden

infringement[{"msg": msg}] {
  input.stack_instance_params.forbidden == true
  msg := sprintf("target %v forbids this stack", [input.target])
}
`;
export const FILTER_ALL = `package keep_declared

filter = input.functional_requirements { true }
`;
export const FILTER_NO_APP_ON_Z0 = `package no_app_on_zone_0

filter = frs {
  endswith(input.infrastructure_target, "z0000")
  frs := ["vm"]
}
filter = frs {
  not endswith(input.infrastructure_target, "z0000")
  frs := input.functional_requirements
}
`;

const POLICY_SOURCES: Record<string, { policy: string; outputs?: string[] }> = {
  keep_out_of_location: { policy: SAT_KEEP_OUT },
  label_racks: { policy: SAT_LABELS, outputs: ["rack"] },
  no_forbidden: { policy: SIT_NO_FORBIDDEN },
  keep_declared: { policy: FILTER_ALL },
  no_app_on_zone_0: { policy: FILTER_NO_APP_ON_Z0 },
};

const PROFILES: Record<string, string>[] = [
  { memory: "4GB", cpu: "2" },
  { memory: "16GB", cpu: "4" },
  { memory: "32GB", cpu: "8", disk: "500GB" },
  { memory: "64GB", cpu: "16" },
];
/** Service document k → profile: 40 % small, 30 % medium, 20 % large, 10 % extra large. */
const profileOf = (k: number) => PROFILES[[0, 0, 0, 0, 1, 1, 1, 2, 2, 3][k % 10] as number] as Record<string, string>;
const MEMORY = ["16GB", "32GB", "32GB", "64GB", "64GB", "64GB", "128GB", "128GB", "128GB", "128GB"];
const SERVICE_DOCS = 20;

function doc(name: string, spec: Document["spec"]): Document {
  return create(DocumentSchema, { meta: { name }, spec });
}

const pad = (n: number, width: number) => String(n).padStart(width, "0");
export const aliasOf = (i: number) => `svc-${pad(i, 4)}`;

export interface TreeOptions {
  /** Prefix of the SIT/SAT names (several trees live side by side on one server). */
  name: string;
  services: number;
  /** A multiple of 100. */
  targets: number;
  /** `mock` invocation of every functional requirement. */
  mock?: JsonObject;
  /** One functional requirement per service (deploy) instead of two (vm, app), and no service policies. */
  single?: boolean;
}

/** The estate (layers + SIT), FRs, service documents, policy templates and the SAT of one case. */
export function stackDocuments(o: TreeOptions): Document[] {
  const docs: Document[] = [];
  const zones = o.targets / 100;
  for (let e = 0; e < 10; e++) {
    const environment = e === 9 ? "staging" : "production";
    docs.push(
      doc(`env-${e}`, {
        case: "environment",
        value: { params: { region: `eu-${e % 3}` }, tags: { environment } } as never,
      }),
    );
    docs.push(
      doc(`loc-${e}`, {
        case: "location",
        value: {
          params: { city: `city-${e}`, dns_domain: `loc-${e}.example.com` },
          tags: { location: `loc-${e}` },
        } as never,
      }),
    );
  }
  for (let z = 0; z < zones; z++) {
    docs.push(
      doc(`z${pad(z, 4)}`, {
        case: "zone",
        value: {
          params: { zone_index: z },
          resources: { memory: MEMORY[z % 10], cpu: String(8 * 2 ** (z % 4)), disk: `${(z % 3) + 1}TB` },
          ...(z % 50 === 7 ? { policies: { no_forbidden: {} } } : {}),
        } as never,
      }),
    );
  }
  const refs: { environment: string; location: string; zone: string }[] = [];
  for (let e = 0; e < 10; e++)
    for (let l = 0; l < 10; l++)
      for (let z = 0; z < zones; z++)
        refs.push({ environment: `env-${e}`, location: `loc-${l}`, zone: `z${pad(z, 4)}` });
  docs.push(
    doc(`${o.name}-estate`, { case: "stackInfrastructureTemplate", value: { infrastructureTargets: refs } as never }),
  );

  const frNames = o.single ? ["deploy"] : ["vm", "app"];
  for (const fr of frNames) {
    docs.push(
      doc(`${o.name}-${fr}`, {
        case: "functionalRequirement",
        value: {
          invocation: { generic: { tool: "mock", mock: o.mock ?? {} } },
          params: { fr_default: fr },
        } as never,
      }),
    );
  }
  for (let k = 0; k < SERVICE_DOCS; k++) {
    docs.push(
      doc(`${o.name}-service-${k}`, {
        case: "service",
        value: {
          functionalRequirements: frNames.map((fr) => `${o.name}-${fr}`),
          resourceRequirements: profileOf(k),
          params: { tier: `tier-${k}`, size: k % 2 === 0 ? "m" : "l" },
          ...(k === 5 && !o.single
            ? { servicePolicies: [{ name: "keep_declared" }, { name: "no_app_on_zone_0" }] }
            : {}),
        } as never,
      }),
    );
  }
  for (const [name, t] of Object.entries(POLICY_SOURCES)) {
    docs.push(doc(name, { case: "policyTemplate", value: { policy: t.policy, outputs: t.outputs ?? [] } as never }));
  }
  const services = Array.from({ length: o.services }, (_, i) => ({
    name: aliasOf(i),
    service: `${o.name}-service-${i % SERVICE_DOCS}`,
  }));
  docs.push(
    doc(`${o.name}-app`, {
      case: "stackApplicationTemplate",
      value: {
        services,
        policies: o.single
          ? {}
          : {
              keep_out_of_location: fromJson(ListValueSchema, [
                { service: aliasOf(1), location: "loc-3" },
                { service: aliasOf(2), location: "loc-0" },
                { service: aliasOf(3), location: "loc-0" },
              ]),
              label_racks: fromJson(ListValueSchema, [{ service: aliasOf(4) }]),
            },
      } as never,
    }),
  );
  return docs;
}

/** The request of a case: required tag, replicas (every 10th service 2, every 25th 3), three stages. */
export function stackRequest(o: TreeOptions, name: string, oneStage = false): StackRequest {
  const aliases = Array.from({ length: o.services }, (_, i) => aliasOf(i));
  const replicas: Record<string, number> = {};
  if (!o.single) {
    aliases.forEach((a, i) => {
      if (i % 25 === 24) replicas[a] = 3;
      else if (i % 10 === 9) replicas[a] = 2;
    });
  }
  const tenth = Math.max(1, Math.floor(o.services / 10));
  const stages = oneStage
    ? [{ name: "all", services: aliases }]
    : [
        { name: "infra", services: aliases.slice(0, tenth) },
        { name: "apps", services: aliases.slice(tenth, o.services - tenth) },
        { name: "edge", services: aliases.slice(o.services - tenth) },
      ];
  return {
    name,
    sat: `${o.name}-app`,
    sit: `${o.name}-estate`,
    params: { owner: "bench", stackl_hostname: "{ri}-host-{hi}" },
    secrets: {},
    serviceParams: {},
    serviceSecrets: {},
    tags: { environment: "production" },
    replicas,
    extraServices: [],
    stages,
  };
}

/** Policy templates compiled once by opa (as ApplyDocuments does on the server). */
const compiled = new Map<string, Awaited<ReturnType<typeof compileRegoPolicy>>>();

export async function compileTemplates(): Promise<void> {
  for (const [name, t] of Object.entries(POLICY_SOURCES)) {
    if (!compiled.has(name)) compiled.set(name, await compileRegoPolicy({ name, source: t.policy }));
  }
}

/** A DocumentRepo over documents held in memory (loadStack only calls getMany). */
export function memoryDocuments(docs: readonly Document[]): DocumentRepo {
  const byKey = new Map<string, StoredDocument>();
  const now = new Date();
  for (const d of docs) {
    const kind = kindKey(kindOfDocument(d) as NonNullable<ReturnType<typeof kindOfDocument>>, "kind");
    if (d.spec.case === "policyTemplate") {
      const c = compiled.get(d.meta?.name ?? "");
      if (c === undefined) throw new Error(`policy template ${d.meta?.name} not compiled`);
      const t = d.spec.value as PolicyTemplate;
      t.bundle = c.bundle;
      t.bundleSha256 = c.sha256;
      t.entrypoints = [...c.entrypoints];
      t.regoVersion = c.regoVersion;
    }
    const name = d.meta?.name ?? "";
    byKey.set(`${kind}/${name}`, {
      kind,
      name,
      revision: 1,
      labels: {},
      description: "",
      spec: specToJson(d),
      createdAt: now,
      updatedAt: now,
      createdBy: "bench",
      updatedBy: "bench",
    });
  }
  return {
    async getMany(keys: Array<{ kind: string; name: string }>) {
      return keys.flatMap((k) => {
        const d = byKey.get(`${k.kind}/${k.name}`);
        return d === undefined ? [] : [d];
      });
    },
  } as unknown as DocumentRepo;
}

// ---------------------------------------------------------------------------------------------------------------
// (a) plan time in memory

interface PlanRun {
  loadMs: number;
  planMs: number;
  policyMs: Map<string, number>;
  evaluations: number;
  steps: number;
  rejections: number;
  heapMiB: number;
}

async function planInMemory(o: TreeOptions): Promise<PlanRun> {
  const repo = memoryDocuments(stackDocuments(o));
  const req = stackRequest(o, `plan-${o.services}`);
  const t0 = performance.now();
  const loaded = await loadStack(repo, req);
  const t1 = performance.now();
  const plan = await planStack(loaded, req, { action: "create" });
  const t2 = performance.now();
  if (!plan.placement.fulfilled)
    throw new Error(`${o.services} × ${o.targets}: not fulfilled: ${plan.placement.message}`);
  const policyMs = new Map<string, number>();
  for (const d of plan.decisions) {
    const k = `${d.phase}: ${d.policy}.${d.rule}`;
    policyMs.set(k, (policyMs.get(k) ?? 0) + d.durationMs);
  }
  return {
    loadMs: t1 - t0,
    planMs: t2 - t1,
    policyMs,
    evaluations: plan.decisions.length,
    steps: plan.steps.length,
    rejections: plan.placement.services.reduce((n, s) => n + s.rejections.length, 0),
    heapMiB: process.memoryUsage().heapUsed / 2 ** 20,
  };
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
};

async function benchPlanTime(): Promise<void> {
  const cases: Array<[TreeOptions, number]> = [[{ name: "m", services: 100, targets: 1000 }, RUNS]];
  if (!QUICK) cases.push([{ name: "l", services: 1000, targets: 10_000 }, 2]);
  const rows: (string | number)[][] = [];
  const breakdown: (string | number)[][] = [];
  await planInMemory({ name: "w", services: 10, targets: 100 }); // compile the bundles, warm the JIT
  for (const [o, runs] of cases) {
    const label = `${o.services.toLocaleString("en")} services × ${o.targets.toLocaleString("en")} targets`;
    const results: PlanRun[] = [];
    for (let i = 0; i < runs; i++) {
      progress(`plan ${label}: run ${i + 1}/${runs}`);
      results.push(await planInMemory(o));
    }
    const plans = results.map((r) => r.planMs);
    // The split and the breakdown are those of the median run.
    const last = [...results].sort((a, b) => a.planMs - b.planMs)[Math.floor((runs - 1) / 2)] as PlanRun;
    const policy = [...last.policyMs.values()].reduce((a, b) => a + b, 0);
    rows.push([
      label,
      runs,
      fmtMs(median(results.map((r) => r.loadMs))),
      fmtMs(median(plans)),
      fmtMs(Math.min(...plans)),
      fmtMs(policy),
      fmtMs(last.planMs - policy),
      last.evaluations,
      last.steps.toLocaleString("en"),
      last.rejections.toLocaleString("en"),
      last.heapMiB.toFixed(0),
    ]);
    for (const [k, ms] of [...last.policyMs.entries()].sort((a, b) => b[1] - a[1]))
      breakdown.push([label, k, fmtMs(ms)]);
  }
  printTable(
    "(a) plan time: loadStack + planStack in process (documents in memory, real bundles)",
    [
      "case",
      "runs",
      "loadStack p50",
      "planStack p50",
      "planStack min",
      "of which policies (median run)",
      "of which JS (median run)",
      "policy evaluations",
      "steps",
      "rejections (all services)",
      "heap after (MiB)",
    ],
    rows,
  );
  printTable(
    "(a) policy time per plan (median run), by phase and rule",
    ["case", "phase: policy.rule", "time"],
    breakdown,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// (b) policy evaluations per second

interface EvalRow {
  label: string;
  evaluations: number;
  perSecond: number;
  meanMs: number;
}

async function rate(label: string, fn: () => unknown | Promise<unknown>): Promise<EvalRow> {
  await fn();
  let n = 0;
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  while (performance.now() < deadline) {
    await fn();
    n++;
  }
  const elapsed = performance.now() - started;
  return { label, evaluations: n, perSecond: (n / elapsed) * 1000, meanMs: elapsed / n };
}

async function opaInputOf(o: TreeOptions): Promise<JsonObject> {
  const req = stackRequest(o, "eval");
  const loaded = await loadStack(memoryDocuments(stackDocuments(o)), req);
  const placement: PlacementRequest = {
    stackInstance: req.name,
    services: loaded.order.map((a) => {
      const s = loaded.services.get(a);
      if (s === undefined) throw new Error(a);
      return {
        alias: a,
        serviceName: s.serviceName,
        service: s.service,
        functionalRequirements: s.functionalRequirements,
      };
    }),
    targets: loaded.targets,
    requiredTags: req.tags,
    satPolicies: {},
    replicas: req.replicas,
    userParams: req.params,
    applyReplicas: true,
  };
  return buildOpaInput(placement);
}

async function benchEvaluations(): Promise<void> {
  const engine = new PolicyEngine();
  const orchestration = await engine.load(builtinBundle("orchestration"));
  const rows: EvalRow[] = [];
  const small = await opaInputOf({ name: "s", services: 10, targets: 100 });
  const medium = await opaInputOf({ name: "m", services: 100, targets: 1000 });
  for (const [size, input] of [
    ["10 services × 100 targets", small],
    ["100 services × 1,000 targets", medium],
  ] as const) {
    const encoded = EncodedInput.of(withSortHints(input as never));
    progress(`evaluations: orchestration ${size}`);
    for (const rule of ["solution_groups", "rejection_groups", "solutions"]) {
      rows.push(
        await rate(`orchestration.${rule}, ${size} (input pre-encoded)`, () =>
          orchestration.evaluate(`orchestration/${rule}`, encoded),
        ),
      );
    }
  }
  progress("evaluations: user SAT and SIT policies, authz");
  const base = EncodedInput.of(medium);
  const sat = {
    name: "keep_out_of_location",
    bundle: await engine.load((compiled.get("keep_out_of_location") as { bundle: Uint8Array }).bundle),
  };
  rows.push(
    await rate("SAT policy keep_out_of_location.solutions, 100 × 1,000 input (spliced)", () =>
      satPolicySolutions(
        sat,
        spliceInput(base, {
          parameters: { service: aliasOf(1), location: "loc-3" },
          user_parameters: {},
          replicas: {},
        }),
        { engine },
      ),
    ),
  );
  const sit = {
    name: "no_forbidden",
    bundle: await engine.load((compiled.get("no_forbidden") as { bundle: Uint8Array }).bundle),
  };
  let i = 0;
  rows.push(
    await rate("SIT policy no_forbidden.infringement, 100 × 1,000 input (spliced)", () =>
      sitPolicyInfringements(
        sit,
        spliceInput(base, { parameters: {}, stack_instance_params: { owner: "bench" }, target: `t${i++}` }),
        { engine },
      ),
    ),
  );
  const smallSat = EncodedInput.of(small);
  rows.push(
    await rate("SAT policy keep_out_of_location.solutions, 10 × 100 input (spliced)", () =>
      satPolicySolutions(
        sat,
        spliceInput(smallSat, {
          parameters: { service: aliasOf(1), location: "loc-3" },
          user_parameters: {},
          replicas: {},
        }),
        { engine },
      ),
    ),
  );
  rows.push(
    await rate("authz: authorize() (allow + reason, result checked)", () =>
      authorize(
        { principal: { name: "bob", roles: ["viewer"] }, rpc: "stackl.v1.DocumentService/GetDocument" },
        { engine },
      ),
    ),
  );
  printTable(
    `(b) policy evaluations per second (in process, one thread, ${SECONDS} s per case)`,
    ["case", "evaluations", "eval/s", "mean"],
    rows.map((r) => [r.label, r.evaluations, fmtRate(r.perSecond), fmtMs(r.meanMs)]),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// (a) through the API, and (c) CreateStackInstance → every step dispatched

async function benchServer(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), "stackl-bench-stacks-"));
  progress("starting the embedded dev runtime (PGlite, in-process bus and agent)");
  const server = await startRuntimeServer(
    { STACKL_DATA_DIR: dir, STACKL_MAX_MESSAGE_BYTES: String(64 * 2 ** 20) },
    "dev",
  );
  try {
    const transport = createGrpcTransport({
      baseUrl: server.url,
      readMaxBytes: 64 * 2 ** 20,
      writeMaxBytes: 64 * 2 ** 20,
    });
    const documents = createClient(DocumentService, transport);
    const stacks = createClient(StackInstanceService, transport);
    const jobs = createClient(JobService, transport);

    // PlanStackInstance, 100 × 1,000.
    const medium: TreeOptions = { name: "m", services: 100, targets: 1000 };
    progress("applying the 100 × 1,000 documents (the server compiles the policy templates with opa)");
    const mediumDocs = stackDocuments(medium);
    await documents.applyDocuments({ documents: mediumDocs.map((document) => ({ document })) });
    const spec = (r: StackRequest) => ({
      name: r.name,
      stackApplicationTemplate: r.sat,
      stackInfrastructureTemplate: r.sit,
      params: r.params,
      tags: r.tags,
      replicas: r.replicas,
      stages: r.stages,
    });
    const planReq = stackRequest(medium, "api-plan");
    const durations: number[] = [];
    let bytes = 0;
    for (let i = 0; i <= RUNS; i++) {
      const t = performance.now();
      const res = await stacks.planStackInstance({ spec: spec(planReq) });
      const ms = performance.now() - t;
      if (!res.plan?.fulfilled) throw new Error(`PlanStackInstance: not fulfilled: ${res.plan?.message}`);
      if (i > 0) durations.push(ms);
      bytes = toBinary(PlanSchema, res.plan).length;
    }
    printTable(
      "(a) PlanStackInstance through the API (embedded dev runtime on PGlite, gRPC, 1 warm-up)",
      ["case", "calls", "p50", "min", "max", "Plan message size"],
      [
        [
          "100 services × 1,000 targets",
          durations.length,
          fmtMs(median(durations)),
          fmtMs(Math.min(...durations)),
          fmtMs(Math.max(...durations)),
          `${(bytes / 2 ** 20).toFixed(1)} MiB`,
        ],
      ],
    );

    // CreateStackInstance → all steps dispatched, 100 services in one stage, one mock FR each.
    const flat: TreeOptions = { name: "d", services: 100, targets: 100, single: true, mock: { log: "deployed" } };
    progress("applying the dispatch documents (100 services, 100 targets, one mock FR)");
    await documents.applyDocuments({ documents: stackDocuments(flat).map((document) => ({ document })) });
    const rows: (string | number)[][] = [];
    const runs = QUICK ? 1 : 3;
    for (let run = 0; run <= runs; run++) {
      const req = stackRequest(flat, run === 0 ? "dispatch-cold" : `dispatch-${run}`, true);
      progress(`CreateStackInstance ${req.name}`);
      const t0 = Date.now();
      const created = await stacks.createStackInstance({ spec: spec(req) });
      const rpcMs = Date.now() - t0;
      const steps = created.plan?.steps.length ?? 0;
      // Wait until the run ends, then read the job rows' timestamps (no polling load during the run).
      let readyMs = Number.NaN;
      for (;;) {
        const inst = (await stacks.getStackInstance({ name: req.name })).instance;
        if (inst?.state === StackInstanceState.READY) {
          readyMs = Date.now() - t0;
          break;
        }
        if (inst?.state === StackInstanceState.FAILED) throw new Error(`${req.name} failed: ${inst.reason}`);
        if (Date.now() - t0 > 120_000) throw new Error(`${req.name} not ready after 120 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const list = (await jobs.listJobs({ stackInstance: req.name, pageSize: 1000 })).jobs;
      if (list.length !== steps) throw new Error(`${req.name}: ${list.length} jobs for ${steps} steps`);
      const createdAt = list
        .map((j) => (j.createTime ? timestampMs(j.createTime) : Number.NaN) - t0)
        .sort((a, b) => a - b);
      const startedAt = list
        .map((j) => (j.startTime ? timestampMs(j.startTime) : Number.NaN) - t0)
        .sort((a, b) => a - b);
      rows.push([
        req.name,
        steps,
        fmtMs(rpcMs),
        fmtMs(createdAt[0] as number),
        fmtMs(median(createdAt)),
        fmtMs(createdAt.at(-1) as number),
        fmtMs(startedAt.at(-1) as number),
        fmtMs(readyMs),
      ]);
    }
    printTable(
      "(c) CreateStackInstance → every step's job created (100 services, one stage, mock invocation; embedded dev runtime, in-process agent of capacity 4); times from the call; the first instance is the runtime's first stack run",
      [
        "instance",
        "steps",
        "CreateStackInstance returned",
        "first job created",
        "median job created",
        "all jobs created (dispatched)",
        "all jobs started by the agent",
        "instance READY",
      ],
      rows,
    );
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------

function ensureOpa(): void {
  if (findOpa() !== undefined) return;
  try {
    const line = execFileSync("bash", ["scripts/tools.sh", "--print-path"], { encoding: "utf8" });
    const m = /PATH=(.*):"\$PATH"/.exec(line);
    if (m?.[1]) process.env.PATH = `${m[1]}:${process.env.PATH}`;
  } catch {
    // reported below
  }
  if (findOpa() === undefined) throw new Error("the opa CLI is needed: run scripts/tools.sh opa");
}

async function main(): Promise<void> {
  const started = performance.now();
  ensureOpa();
  console.log(`# Stack placement and orchestration benchmark (bench/stacks.ts${QUICK ? " --quick" : ""})\n`);
  console.log(machineLine());
  progress("compiling the policy templates with opa");
  await compileTemplates();
  await benchPlanTime();
  await benchEvaluations();
  await benchServer();
  console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main();
