/**
 * Shape rules of every document kind, reported as field violations with exact paths. References to other documents
 * are checked by the store (see `document-references.ts`); this file needs nothing but the documents themselves.
 */
import type { JsonValue } from "@bufbuild/protobuf";
import { toJson } from "@bufbuild/protobuf";
import { ListValueSchema } from "@bufbuild/protobuf/wkt";
import type {
  Document,
  FunctionalRequirement,
  InfrastructureLayer,
  PolicyTemplate,
  Service,
  StackApplicationTemplate,
  StackInfrastructureTemplate,
} from "../../gen/stackl/v1/documents_pb.js";
import type { FieldViolation } from "../errors.js";
import { kindInfo, kindOf } from "./document-kinds.js";
import { validateLabels, validateName } from "./document-names.js";
import { fieldPath, indexPath, keyPath } from "./field-path.js";
import { INVOCATION_TOOLS, isInvocationTool } from "./invocation-tools.js";
import { regoPackageOf } from "./rego-package.js";

/** Accepted `PolicyTemplate.rego_version` values (empty means `v0`). */
export const REGO_VERSIONS: readonly string[] = ["", "v0", "v1"];

/**
 * Every rule violated by `doc`. `path` prefixes every field (e.g. `documents[3]`, giving
 * `documents[3].service.functional_requirements[1]`); pass `""` for paths relative to the document.
 */
export function validateDocument(doc: Document, path: string): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const kind = kindOf(doc);
  violations.push(...validateName(doc.meta?.name ?? "", fieldPath(path, "meta.name"), kind));
  if (doc.meta !== undefined) violations.push(...validateLabels(doc.meta.labels, fieldPath(path, "meta.labels")));

  const spec = doc.spec;
  switch (spec.case) {
    case undefined:
      violations.push({
        field: fieldPath(path, "spec"),
        message: `a document needs exactly one spec: ${DOCUMENT_SPEC_FIELDS}`,
      });
      break;
    case "environment":
    case "location":
    case "zone":
      violations.push(...validateLayer(spec.value, fieldPath(path, spec.case)));
      break;
    case "functionalRequirement":
      violations.push(...validateFunctionalRequirement(spec.value, fieldPath(path, "functional_requirement")));
      break;
    case "service":
      violations.push(...validateService(spec.value, fieldPath(path, "service")));
      break;
    case "stackApplicationTemplate":
      violations.push(...validateSat(spec.value, fieldPath(path, "stack_application_template")));
      break;
    case "stackInfrastructureTemplate":
      violations.push(...validateSit(spec.value, fieldPath(path, "stack_infrastructure_template")));
      break;
    case "policyTemplate":
      violations.push(...validatePolicyTemplate(spec.value, doc.meta?.name ?? "", fieldPath(path, "policy_template")));
      break;
    default: {
      const never: never = spec;
      throw new Error(`unhandled document spec ${JSON.stringify(never)}`);
    }
  }
  return violations;
}

/**
 * Violations of every document in a batch (each under `pathPrefix[i]`), plus one per document whose kind and name
 * repeat an earlier document of the batch (at `pathPrefix[j].meta.name`).
 */
export function validateBatch(docs: readonly Document[], pathPrefix = "documents"): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const seen = new Map<string, number>();
  for (const [index, doc] of docs.entries()) {
    const path = indexPath(pathPrefix, index);
    violations.push(...validateDocument(doc, path));
    const kind = kindOf(doc);
    const name = doc.meta?.name ?? "";
    if (kind === undefined || name === "") continue;
    const key = `${kind}/${name}`;
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, index);
    } else {
      violations.push({
        field: fieldPath(path, "meta.name"),
        message: `duplicate ${kindInfo(kind).singular} ${JSON.stringify(name)} in this batch (first at ${indexPath(pathPrefix, first)})`,
      });
    }
  }
  return violations;
}

const DOCUMENT_SPEC_FIELDS =
  "environment, location, zone, functional_requirement, service, stack_application_template, stack_infrastructure_template or policy_template";

function validateLayer(layer: InfrastructureLayer, path: string): FieldViolation[] {
  const violations: FieldViolation[] = [];
  for (const name of Object.keys(layer.policies).sort()) {
    violations.push(...validateName(name, keyPath(fieldPath(path, "policies"), name), "policy_template"));
  }
  violations.push(...emptyKeys(layer.params ?? {}, fieldPath(path, "params")));
  violations.push(...emptyKeys(layer.secrets, fieldPath(path, "secrets")));
  violations.push(...emptyKeys(layer.resources, fieldPath(path, "resources")));
  violations.push(...emptyKeys(layer.tags, fieldPath(path, "tags")));
  return violations;
}

function validateFunctionalRequirement(fr: FunctionalRequirement, path: string): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const invocationPath = fieldPath(path, "invocation");
  const providers = Object.keys(fr.invocation).sort();
  if (providers.length === 0) {
    violations.push({
      field: invocationPath,
      message: "at least one invocation is required (cloud provider, e.g. `generic`, -> invocation)",
    });
  }
  for (const provider of providers) {
    const invocation = fr.invocation[provider];
    const at = keyPath(invocationPath, provider);
    if (provider === "") violations.push({ field: at, message: "the cloud provider key must not be empty" });
    if (invocation === undefined) continue;
    const tool = invocation.tool;
    if (tool === "") {
      violations.push({ field: fieldPath(at, "tool"), message: `a tool is required: ${INVOCATION_TOOLS.join(", ")}` });
    } else if (!isInvocationTool(tool)) {
      violations.push({
        field: fieldPath(at, "tool"),
        message: `unknown tool ${JSON.stringify(tool)}; known tools: ${INVOCATION_TOOLS.join(", ")}`,
      });
    } else if (tool === "shell") {
      if (invocation.command.length === 0) {
        violations.push({
          field: fieldPath(at, "command"),
          message: "a shell invocation needs a command (the argv list, e.g. [./deploy.sh, --verbose])",
        });
      } else if (invocation.command[0] === "") {
        violations.push({ field: indexPath(fieldPath(at, "command"), 0), message: "the program must not be empty" });
      }
    }
    if (invocation.timeoutSeconds < 0) {
      violations.push({ field: fieldPath(at, "timeout_seconds"), message: "must not be negative" });
    }
    if (invocation.serial < 0) violations.push({ field: fieldPath(at, "serial"), message: "must not be negative" });
  }
  for (const name of Object.keys(fr.outputs).sort()) {
    const at = keyPath(fieldPath(path, "outputs"), name);
    if (name === "") violations.push({ field: at, message: "the output name must not be empty" });
    if (fr.outputs[name] === "") violations.push({ field: at, message: "the output path must not be empty" });
  }
  if (fr.outputsFormat !== "" && fr.outputsFormat !== "json") {
    violations.push({
      field: fieldPath(path, "outputs_format"),
      message: `unsupported outputs format ${JSON.stringify(fr.outputsFormat)}; only "json" is supported`,
    });
  }
  violations.push(...emptyKeys(fr.params ?? {}, fieldPath(path, "params")));
  violations.push(...emptyKeys(fr.secrets, fieldPath(path, "secrets")));
  return violations;
}

function validateService(service: Service, path: string): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const frPath = fieldPath(path, "functional_requirements");
  if (service.functionalRequirements.length === 0) {
    violations.push({ field: frPath, message: "at least one functional requirement is required" });
  }
  violations.push(
    ...uniqueNames(service.functionalRequirements, frPath, "functional requirement", "functional_requirements"),
  );
  for (const [index, policy] of service.servicePolicies.entries()) {
    const at = fieldPath(indexPath(fieldPath(path, "service_policies"), index), "name");
    violations.push(...validateName(policy.name, at, "policy_template"));
  }
  violations.push(...emptyKeys(service.resourceRequirements, fieldPath(path, "resource_requirements")));
  violations.push(...emptyKeys(service.params ?? {}, fieldPath(path, "params")));
  violations.push(...emptyKeys(service.secrets, fieldPath(path, "secrets")));
  return violations;
}

function validateSat(sat: StackApplicationTemplate, path: string): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const servicesPath = fieldPath(path, "services");
  if (sat.services.length === 0) violations.push({ field: servicesPath, message: "at least one service is required" });

  const aliases = new Map<string, number>();
  for (const [index, ref] of sat.services.entries()) {
    const at = indexPath(servicesPath, index);
    const aliasProblems = validateName(ref.name, fieldPath(at, "name"));
    violations.push(...aliasProblems);
    violations.push(...validateName(ref.service, fieldPath(at, "service")));
    if (aliasProblems.length > 0) continue;
    const first = aliases.get(ref.name);
    if (first === undefined) {
      aliases.set(ref.name, index);
    } else {
      violations.push({
        field: fieldPath(at, "name"),
        message: `duplicate service alias ${JSON.stringify(ref.name)} (first at ${indexPath("services", first)})`,
      });
    }
  }
  const aliasList = [...aliases.keys()].join(", ");
  const unknownAlias = (alias: string): string =>
    `${JSON.stringify(alias)} is not a service alias of this template (aliases: ${aliasList || "none"})`;

  const stageNames = new Map<string, number>();
  const staged = new Map<string, number>();
  for (const [index, stage] of sat.stages.entries()) {
    const at = indexPath(fieldPath(path, "stages"), index);
    if (stage.name === "") {
      violations.push({ field: fieldPath(at, "name"), message: "a stage name is required" });
    } else {
      const first = stageNames.get(stage.name);
      if (first === undefined) stageNames.set(stage.name, index);
      else {
        violations.push({
          field: fieldPath(at, "name"),
          message: `duplicate stage name ${JSON.stringify(stage.name)} (first at ${indexPath("stages", first)})`,
        });
      }
    }
    const stageServices = fieldPath(at, "services");
    if (stage.services.length === 0) {
      violations.push({ field: stageServices, message: "a stage needs at least one service alias" });
    }
    for (const [j, alias] of stage.services.entries()) {
      const aliasAt = indexPath(stageServices, j);
      if (!aliases.has(alias)) {
        violations.push({ field: aliasAt, message: unknownAlias(alias) });
        continue;
      }
      const inStage = staged.get(alias);
      if (inStage === undefined) staged.set(alias, index);
      else {
        violations.push({
          field: aliasAt,
          message: `service alias ${JSON.stringify(alias)} is already in ${indexPath("stages", inStage)}; an alias may appear in one stage only`,
        });
      }
    }
  }

  const policiesPath = fieldPath(path, "policies");
  for (const name of Object.keys(sat.policies).sort()) {
    const at = keyPath(policiesPath, name);
    violations.push(...validateName(name, at, "policy_template"));
    const list = sat.policies[name];
    const entries = list === undefined ? [] : (toJson(ListValueSchema, list) as JsonValue[]);
    for (const [index, entry] of entries.entries()) {
      const entryAt = indexPath(at, index);
      if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
        violations.push({
          field: entryAt,
          message: 'a SAT policy entry must be an object of parameters with a "service" alias',
        });
        continue;
      }
      const service = entry.service;
      if (typeof service !== "string" || service === "") {
        violations.push({
          field: fieldPath(entryAt, "service"),
          message: "a SAT policy entry must name the service alias it applies to",
        });
      } else if (!aliases.has(service)) {
        violations.push({ field: fieldPath(entryAt, "service"), message: unknownAlias(service) });
      }
    }
  }
  return violations;
}

function validateSit(sit: StackInfrastructureTemplate, path: string): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const targetsPath = fieldPath(path, "infrastructure_targets");
  if (sit.infrastructureTargets.length === 0) {
    violations.push({ field: targetsPath, message: "at least one infrastructure target is required" });
  }
  const keys = new Map<string, number>();
  for (const [index, target] of sit.infrastructureTargets.entries()) {
    const at = indexPath(targetsPath, index);
    const problems = [
      ...validateName(target.environment, fieldPath(at, "environment")),
      ...validateName(target.location, fieldPath(at, "location")),
      ...validateName(target.zone, fieldPath(at, "zone")),
    ];
    violations.push(...problems);
    if (problems.length > 0) continue;
    const key = `${target.environment}.${target.location}.${target.zone}`;
    const first = keys.get(key);
    if (first === undefined) keys.set(key, index);
    else {
      violations.push({
        field: at,
        message: `duplicate infrastructure target ${JSON.stringify(key)} (first at ${indexPath("infrastructure_targets", first)})`,
      });
    }
  }
  return violations;
}

function validatePolicyTemplate(policy: PolicyTemplate, name: string, path: string): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const policyPath = fieldPath(path, "policy");
  if (policy.policy.trim() === "") {
    if (policy.bundle.length === 0) {
      violations.push({
        field: policyPath,
        message: "a Rego policy (policy) or a prebuilt bundle (bundle) is required",
      });
    }
  } else {
    const parsed = regoPackageOf(policy.policy);
    if (!parsed.ok) {
      violations.push({ field: policyPath, message: parsed.message });
    } else if (parsed.packageName !== name) {
      violations.push({
        field: policyPath,
        message: `package ${JSON.stringify(parsed.packageName)} (line ${parsed.line}) must equal the document name ${JSON.stringify(name)}`,
      });
    }
  }
  if (!REGO_VERSIONS.includes(policy.regoVersion)) {
    violations.push({
      field: fieldPath(path, "rego_version"),
      message: `unknown Rego version ${JSON.stringify(policy.regoVersion)}; use "v0" (pre-1.0 syntax, the default) or "v1"`,
    });
  }
  return violations;
}

/** Invalid and repeated document names in the list at `path` (`what` and `listName` for messages). */
function uniqueNames(names: readonly string[], path: string, what: string, listName: string): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const seen = new Map<string, number>();
  for (const [index, name] of names.entries()) {
    const at = indexPath(path, index);
    const problems = validateName(name, at);
    violations.push(...problems);
    if (problems.length > 0) continue;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, index);
    else {
      violations.push({
        field: at,
        message: `duplicate ${what} ${JSON.stringify(name)} (first at ${indexPath(listName, first)})`,
      });
    }
  }
  return violations;
}

function emptyKeys(map: Readonly<Record<string, unknown>>, path: string): FieldViolation[] {
  return Object.hasOwn(map, "") ? [{ field: keyPath(path, ""), message: "keys must not be empty" }] : [];
}
