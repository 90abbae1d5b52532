import type { JsonObject } from "@bufbuild/protobuf";
import type {
  FunctionalRequirement,
  InfrastructureLayer,
  InfrastructureTarget,
  PolicyTemplate,
  Service,
  StackApplicationTemplate,
  StackInfrastructureTemplate,
} from "../../gen/stackl/v1/documents_pb.js";
import { computeTargets } from "../domain/infrastructure-targets.js";
import { type FieldViolation, StacklError } from "../errors.js";
import { documentFromStored } from "../services/document-codec.js";
import type { DocumentRepo } from "../store/document-repo.js";

/** What a stack instance asks for (the original's StackInstanceInvocation / StackInstanceUpdate). */
export interface StackRequest {
  name: string;
  sat: string;
  sit: string;
  params: JsonObject;
  secrets: Record<string, string>;
  serviceParams: Record<string, JsonObject>;
  serviceSecrets: Record<string, Record<string, string>>;
  tags: Record<string, string>;
  replicas: Record<string, number>;
  extraServices: { name: string; service: string }[];
  stages: { name: string; services: string[] }[];
}

export interface LoadedService {
  alias: string;
  serviceName: string;
  service: Service;
  functionalRequirements: Map<string, FunctionalRequirement>;
}

/** The documents a stack instance is built from, loaded and checked. */
export interface LoadedStack {
  sat: StackApplicationTemplate;
  sit: StackInfrastructureTemplate;
  targets: InfrastructureTarget[];
  /** Aliases in template order, extra services last. */
  order: string[];
  services: Map<string, LoadedService>;
  policyTemplates: Map<string, PolicyTemplate>;
}

/** Loads the SAT, the SIT (with targets computed from the current layers), services, FRs and policy templates. */
export async function loadStack(repo: DocumentRepo, req: StackRequest, signal?: AbortSignal): Promise<LoadedStack> {
  const violations: FieldViolation[] = [];
  const [satRow, sitRow] = await repo
    .getMany(
      [
        { kind: "stack_application_template", name: req.sat },
        { kind: "stack_infrastructure_template", name: req.sit },
      ],
      signal,
    )
    .then((rows) => [
      rows.find((r) => r.kind === "stack_application_template"),
      rows.find((r) => r.kind === "stack_infrastructure_template"),
    ]);
  if (satRow === undefined)
    violations.push({
      field: "spec.stack_application_template",
      message: `stack application template "${req.sat}" does not exist`,
    });
  if (sitRow === undefined)
    violations.push({
      field: "spec.stack_infrastructure_template",
      message: `stack infrastructure template "${req.sit}" does not exist`,
    });
  if (satRow === undefined || sitRow === undefined) throw StacklError.invalid(violations);
  const sat = documentFromStored(satRow).spec.value as StackApplicationTemplate;
  const sit = documentFromStored(sitRow).spec.value as StackInfrastructureTemplate;

  const refs = sat.services.map((s) => ({ name: s.name, service: s.service }));
  const seen = new Set(refs.map((r) => r.name));
  req.extraServices.forEach((e, i) => {
    if (seen.has(e.name))
      violations.push({
        field: `spec.services[${i}].name`,
        message: `alias "${e.name}" is already used by the template`,
      });
    seen.add(e.name);
    refs.push(e);
  });
  for (const [alias] of Object.entries(req.replicas)) {
    if (!seen.has(alias))
      violations.push({ field: `spec.replicas["${alias}"]`, message: `no service alias "${alias}" in the stack` });
  }
  for (const [alias, n] of Object.entries(req.replicas)) {
    if (!Number.isInteger(n) || n < 0)
      violations.push({ field: `spec.replicas["${alias}"]`, message: "must be a whole number >= 0" });
  }
  for (const [i, st] of req.stages.entries()) {
    for (const [j, a] of st.services.entries()) {
      if (!seen.has(a)) {
        violations.push({ field: `spec.stages[${i}].services[${j}]`, message: `no service alias "${a}" in the stack` });
      }
    }
  }

  // Layers of the SIT and the services of the stack.
  const layerKeys = sit.infrastructureTargets.flatMap((t) => [
    { kind: "environment", name: t.environment },
    { kind: "location", name: t.location },
    { kind: "zone", name: t.zone },
  ]);
  const serviceKeys = refs.map((r) => ({ kind: "service", name: r.service }));
  const unique = new Map([...layerKeys, ...serviceKeys].map((k) => [`${k.kind}/${k.name}`, k]));
  const rows = await repo.getMany([...unique.values()], signal);
  const byKey = new Map(rows.map((r) => [`${r.kind}/${r.name}`, documentFromStored(r).spec.value]));
  const layer = (kind: string) => (name: string) => byKey.get(`${kind}/${name}`) as InfrastructureLayer | undefined;
  const computed = computeTargets(sit, {
    environment: layer("environment"),
    location: layer("location"),
    zone: layer("zone"),
  });
  violations.push(...computed.violations);

  const frNames = new Set<string>();
  const policyNames = new Set<string>(Object.keys(sat.policies));
  for (const t of computed.targets) for (const p of Object.keys(t.policies)) policyNames.add(p);
  const services = new Map<string, LoadedService>();
  refs.forEach((r, i) => {
    const svc = byKey.get(`service/${r.service}`) as Service | undefined;
    if (svc === undefined) {
      violations.push({ field: `services["${r.name}"].service`, message: `service "${r.service}" does not exist` });
      return;
    }
    void i;
    for (const fr of svc.functionalRequirements) frNames.add(fr);
    for (const p of svc.servicePolicies) policyNames.add(p.name);
    services.set(r.name, { alias: r.name, serviceName: r.service, service: svc, functionalRequirements: new Map() });
  });
  const more = await repo.getMany(
    [
      ...[...frNames].map((name) => ({ kind: "functional_requirement", name })),
      ...[...policyNames].map((name) => ({ kind: "policy_template", name })),
    ],
    signal,
  );
  const frs = new Map<string, FunctionalRequirement>();
  const policyTemplates = new Map<string, PolicyTemplate>();
  for (const row of more) {
    const v = documentFromStored(row).spec.value;
    if (row.kind === "functional_requirement") frs.set(row.name, v as FunctionalRequirement);
    else policyTemplates.set(row.name, v as PolicyTemplate);
  }
  for (const s of services.values()) {
    for (const fr of s.service.functionalRequirements) {
      const doc = frs.get(fr);
      if (doc === undefined)
        violations.push({
          field: `services["${s.alias}"].functional_requirements`,
          message: `functional requirement "${fr}" does not exist`,
        });
      else s.functionalRequirements.set(fr, doc);
    }
  }
  if (violations.length > 0) throw StacklError.invalid(violations);
  return { sat, sit, targets: computed.targets, order: refs.map((r) => r.name), services, policyTemplates };
}
