/**
 * Document files: the original STACKL format (`name:`/`type:`/`category:` at the top, loaded unchanged) and our native
 * format (proto JSON of `Document`: `meta:` plus one spec field), as JSON or YAML text (multi-document `---`).
 *
 * Conversion reports type errors (a list where a mapping belongs, …) as violations and ignored fields as warnings;
 * the rules of each kind (required fields, names, …) are `validateDocument`'s job, run on the converted document.
 * STACKL-format YAML is read with PyYAML's YAML 1.1 scalars (`yes`/`no`/`on`/`off` are booleans, as the original CLI
 * read them); native-format YAML with YAML 1.2.
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { create, fromJson, toJson } from "@bufbuild/protobuf";
import { ListValueSchema } from "@bufbuild/protobuf/wkt";
import type { DocumentOptions, ParseOptions, ScalarTag, SchemaOptions, Tags, Document as YamlDocument } from "yaml";
import { parseAllDocuments } from "yaml";
import type {
  Document,
  FunctionalRequirement,
  InfrastructureLayer,
  Invocation,
  PolicyTemplate,
  Service,
  StackApplicationTemplate,
  StackInfrastructureTemplate,
} from "../../gen/stackl/v1/documents_pb.js";
import {
  DocumentSchema,
  FunctionalRequirementSchema,
  InfrastructureLayerSchema,
  InvocationSchema,
  PolicyTemplateSchema,
  ServiceSchema,
  StackApplicationTemplateSchema,
  StackInfrastructureTemplateSchema,
} from "../../gen/stackl/v1/documents_pb.js";
import type { FieldViolation } from "../errors.js";
import type { DocumentKind } from "./document-kinds.js";
import { documentKinds, kindFromStacklType, kindInfo, kindOf } from "./document-kinds.js";
import { fieldPath, indexPath, keyPath } from "./field-path.js";

/** `stackl`: the original `type:`/`category:` format; `native`: proto JSON of `Document` (`meta:` + spec). */
export type DocumentFormat = "stackl" | "native";

/** The result of converting one object into a document. */
export interface ConvertedDocument {
  /** Set when conversion found no violation; may still violate `validateDocument` rules. */
  doc?: Document;
  violations: FieldViolation[];
  /** Fields that were ignored (unknown, legacy) or reinterpreted, each prefixed with the document path. */
  warnings: string[];
}

/** One document read from an object or a file. */
export interface ParsedDocument extends ConvertedDocument {
  /** `file.yaml#2` for the second document of a file (always numbered, from 1); `#2[0]` inside a top-level list. */
  path: string;
  /** Undefined when the text or object could not be recognised. */
  format?: DocumentFormat;
}

// ---------------------------------------------------------------------------------------------------------------------
// Text

/**
 * Every document in `text`. JSON when `fileName` ends in `.json`, YAML (multi-document) otherwise; a top-level list
 * holds several documents. Empty YAML documents (only comments) are skipped. Syntax errors become one violation at
 * the path of the broken document.
 */
export function parseDocumentText(text: string, fileName: string): ParsedDocument[] {
  if (/\.json$/i.test(fileName)) return parseJsonText(text, fileName);
  return parseYamlText(text, fileName);
}

function parseJsonText(text: string, fileName: string): ParsedDocument[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const path = `${fileName}#1`;
    return [failed(path, `invalid JSON: ${err instanceof Error ? err.message : String(err)}`)];
  }
  return expandTopLevel(value, `${fileName}#1`, (item, path) => parseDocumentObject(item, path));
}

function parseYamlText(text: string, fileName: string): ParsedDocument[] {
  const modern = parseAllDocuments(text, YAML_12_OPTIONS);
  let legacy: YamlDocument.Parsed[] | undefined;
  const legacyDoc = (index: number): YamlDocument.Parsed | undefined => {
    legacy ??= [...parseAllDocuments(text, YAML_11_OPTIONS)];
    return legacy[index];
  };
  const results: ParsedDocument[] = [];
  for (const [index, yamlDoc] of modern.entries()) {
    const path = `${fileName}#${index + 1}`;
    const error = yamlDoc.errors[0];
    if (error !== undefined) {
      results.push(failed(path, `invalid YAML: ${firstLine(error.message)}`));
      continue;
    }
    const converted = yamlDoc.contents === null ? { value: null } : yamlToJs(yamlDoc);
    if ("error" in converted) {
      results.push(failed(path, `invalid YAML: ${converted.error}`));
      continue;
    }
    const value = converted.value;
    // Empty documents (only comments, or a trailing `---`) hold no document.
    if (value === null || value === undefined) continue;
    results.push(
      ...expandTopLevel(value, path, (item, itemPath, itemIndex) => {
        if (detectFormat(item) !== "stackl") return parseDocumentObject(item, itemPath);
        // STACKL files were read by PyYAML: re-read this document with YAML 1.1 scalars.
        const old = legacyDoc(index);
        const oldError = old?.errors[0];
        if (old === undefined || oldError !== undefined) {
          return failed(itemPath, `invalid YAML: ${firstLine(oldError?.message ?? "unreadable as YAML 1.1")}`);
        }
        const oldConverted = yamlToJs(old);
        if ("error" in oldConverted) return failed(itemPath, `invalid YAML: ${oldConverted.error}`);
        const oldValue = oldConverted.value;
        const oldItem = itemIndex === undefined ? oldValue : Array.isArray(oldValue) ? oldValue[itemIndex] : undefined;
        return parseDocumentObject(oldItem, itemPath);
      }),
    );
  }
  return results;
}

/** `doc.toJS()`, which throws on alias bombs (more than `maxAliasCount` alias expansions), as a result. */
function yamlToJs(doc: YamlDocument.Parsed): { value: unknown } | { error: string } {
  try {
    return { value: doc.toJS() };
  } catch (err) {
    return { error: firstLine(err instanceof Error ? err.message : String(err)) };
  }
}

function expandTopLevel(
  value: unknown,
  path: string,
  parse: (item: unknown, path: string, index: number | undefined) => ParsedDocument,
): ParsedDocument[] {
  if (!Array.isArray(value)) return [parse(value, path, undefined)];
  return value.map((item, index) => parse(item, indexPath(path, index), index));
}

function failed(path: string, message: string): ParsedDocument {
  return { path, violations: [{ field: path, message }], warnings: [] };
}

function firstLine(message: string): string {
  return (message.split("\n")[0] ?? message).replace(/:$/, "");
}

// PyYAML resolves fewer plain scalars than the `yaml` package's YAML 1.1 schema: no `y`/`n` booleans, no float
// without a dot (`1e3` stays a string), and timestamps stay strings (the original sent them on as JSON strings).
const PYYAML_TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const PYYAML_FALSE = /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/;
const PYYAML_EXP_FLOAT = /^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*[eE][-+][0-9]+$/;

const YAML_12_OPTIONS: DocumentOptions & ParseOptions & SchemaOptions = { version: "1.2", prettyErrors: true };
const YAML_11_OPTIONS: DocumentOptions & ParseOptions & SchemaOptions = {
  version: "1.1",
  merge: true,
  prettyErrors: true,
  customTags: (tags: Tags): Tags =>
    tags.flatMap((tag): Tags => {
      if (typeof tag === "string" || "collection" in tag) return [tag];
      const scalar: ScalarTag = tag;
      if (scalar.tag === "tag:yaml.org,2002:timestamp") return [];
      if (scalar.tag === "tag:yaml.org,2002:bool") {
        return [{ ...scalar, test: scalar.test?.test("true") ? PYYAML_TRUE : PYYAML_FALSE }];
      }
      if (scalar.tag === "tag:yaml.org,2002:float" && scalar.format === "EXP") {
        return [{ ...scalar, test: PYYAML_EXP_FLOAT }];
      }
      return [scalar];
    }),
};

// ---------------------------------------------------------------------------------------------------------------------
// Objects

/** `stackl` when `obj` has a `type:` key, `native` when it has `meta:`, undefined otherwise (or when it has both). */
export function detectFormat(obj: unknown): DocumentFormat | undefined {
  if (!isPlainObject(obj)) return undefined;
  const stackl = Object.hasOwn(obj, "type");
  const native = Object.hasOwn(obj, "meta");
  if (stackl === native) return undefined;
  return stackl ? "stackl" : "native";
}

/** Converts an object in either format, choosing by the presence of `type:` (STACKL) or `meta:` (native). */
export function parseDocumentObject(obj: unknown, path: string): ParsedDocument {
  if (!isPlainObject(obj)) {
    return failed(path, `a document must be a mapping, not ${describe(obj)}`);
  }
  const format = detectFormat(obj);
  switch (format) {
    case "stackl":
      return { path, format, ...fromStacklObject(obj, path) };
    case "native":
      return { path, format, ...fromNativeObject(obj, path) };
    case undefined: {
      const both = Object.hasOwn(obj, "type") && Object.hasOwn(obj, "meta");
      return failed(
        path,
        both
          ? "a document has either `type:` (STACKL format) or `meta:` (native format), not both"
          : "unrecognised document: expected `type:` (STACKL format) or `meta:` (native format)",
      );
    }
    default: {
      const never: never = format;
      throw new Error(`unhandled format ${String(never)}`);
    }
  }
}

/** Converts the proto JSON of a `Document` (field names in snake_case or camelCase). Unknown fields are violations. */
export function fromNativeObject(obj: unknown, path: string): ConvertedDocument {
  const violations: FieldViolation[] = [];
  const json = toJsonValue(obj, path, violations);
  if (json === undefined) return { violations, warnings: [] };
  try {
    return { doc: fromJson(DocumentSchema, json), violations, warnings: [] };
  } catch (err) {
    return { violations: [{ field: path, message: err instanceof Error ? err.message : String(err) }], warnings: [] };
  }
}

const STACKL_NOT_DOCUMENTS: Readonly<Record<string, string>> = {
  stack_instance: "stack instances are not documents; create them with `stackl apply -c MANIFEST NAME`",
  snapshot: "snapshots are replaced by document revisions (`stackl history`, `stackl restore`)",
};

const COMMON_KEYS = ["name", "type", "category", "description", "labels"] as const;
const LAYER_KEYS = [
  "cloud_provider",
  "params",
  "secrets",
  "resources",
  "policies",
  "tags",
  "agent",
  "outputs",
] as const;
const FR_KEYS = ["invocation", "params", "secrets", "outputs", "outputs_format", "as_group"] as const;
const SERVICE_KEYS = ["functional_requirements", "resource_requirements", "params", "secrets", "service_policies"];
const SAT_KEYS = ["services", "policies", "stages"] as const;
const SIT_KEYS = ["infrastructure_targets", "infrastructure_capabilities"] as const;
const POLICY_KEYS = ["policy", "inputs", "outputs", "rego_version"] as const;
const INVOCATION_KEYS = [
  "tool",
  "image",
  "description",
  "before_command",
  "playbook_path",
  "ansible_role",
  "gather_facts",
  "serial",
  "connection",
  "become",
  "wait_for_connection",
  // Extensions for handlers the original lacked (shell, tofu, mock).
  "command",
  "working_dir",
  "env",
  "backend_config",
  "timeout_seconds",
  "mock",
] as const;

/**
 * Converts an object in the original STACKL format (`name`, `type`, `category`, `description` and the fields of the
 * type) into a Document. Values are coerced as pydantic did: numbers and booleans in string maps (`tags`,
 * `resources`, `resource_requirements`, `secrets`, …) become strings, booleans accept `true`/`false`/`yes`/`no`/
 * `1`/`0`. Unknown fields are ignored with a warning; so is a `category` that does not match the type.
 * `infrastructure_capabilities` (computed by the original, often stale) is ignored silently.
 */
export function fromStacklObject(obj: unknown, path: string): ConvertedDocument {
  const c = new Converter(path);
  if (!isPlainObject(obj)) {
    c.violation("", `a document must be a mapping, not ${describe(obj)}`);
    return c.result(undefined);
  }
  const type = c.str(obj.type, "type");
  const kind = type === undefined ? undefined : kindFromStacklType(type);
  if (type === undefined || type === "") {
    c.violation("type", `a type is required: ${documentKinds.join(", ")}`);
    return c.result(undefined);
  }
  if (kind === undefined) {
    const hint = STACKL_NOT_DOCUMENTS[type];
    c.violation("type", hint ?? `unknown type ${JSON.stringify(type)}; expected one of ${documentKinds.join(", ")}`);
    return c.result(undefined);
  }
  const info = kindInfo(kind);
  if (obj.category !== undefined && obj.category !== null && obj.category !== info.category) {
    c.warn(
      "category",
      `category ${JSON.stringify(obj.category)} ignored: ${info.plural} are "${info.category}" (the type decides)`,
    );
  }
  const name = c.str(obj.name, "name", true) ?? "";
  const description = c.str(obj.description, "description") ?? "";
  const labels = c.strMap(obj.labels, "labels");
  const specKeys = specKeysOf(kind);
  c.warnUnknown(obj, [...COMMON_KEYS, ...specKeys, ...(isLayer(kind) ? ["packages"] : [])], "");
  if (isLayer(kind) && obj.packages !== undefined) {
    c.warn("packages", "packages was removed in STACKL 0.4 and is ignored");
  }

  const spec = convertSpec(c, kind, obj);
  const doc = create(DocumentSchema, { meta: { name, description, labels }, spec });
  return c.result(doc);
}

function specKeysOf(kind: DocumentKind): readonly string[] {
  switch (kind) {
    case "environment":
    case "location":
    case "zone":
      return LAYER_KEYS;
    case "functional_requirement":
      return FR_KEYS;
    case "service":
      return SERVICE_KEYS;
    case "stack_application_template":
      return SAT_KEYS;
    case "stack_infrastructure_template":
      return SIT_KEYS;
    case "policy_template":
      return POLICY_KEYS;
    default: {
      const never: never = kind;
      throw new Error(`unhandled kind ${String(never)}`);
    }
  }
}

function isLayer(kind: DocumentKind): kind is "environment" | "location" | "zone" {
  return kind === "environment" || kind === "location" || kind === "zone";
}

function convertSpec(c: Converter, kind: DocumentKind, obj: Record<string, unknown>): Document["spec"] {
  switch (kind) {
    case "environment":
    case "location":
    case "zone":
      return { case: kind, value: convertLayer(c, obj) };
    case "functional_requirement":
      return { case: "functionalRequirement", value: convertFr(c, obj) };
    case "service":
      return { case: "service", value: convertService(c, obj) };
    case "stack_application_template":
      return { case: "stackApplicationTemplate", value: convertSat(c, obj) };
    case "stack_infrastructure_template":
      return { case: "stackInfrastructureTemplate", value: convertSit(c, obj) };
    case "policy_template":
      return { case: "policyTemplate", value: convertPolicyTemplate(c, obj) };
    default: {
      const never: never = kind;
      throw new Error(`unhandled kind ${String(never)}`);
    }
  }
}

function convertLayer(c: Converter, obj: Record<string, unknown>): InfrastructureLayer {
  return create(InfrastructureLayerSchema, {
    cloudProvider: c.str(obj.cloud_provider, "cloud_provider") ?? "",
    params: c.struct(obj.params, "params"),
    secrets: c.strMap(obj.secrets, "secrets"),
    resources: c.strMap(obj.resources, "resources"),
    policies: c.structMap(obj.policies, "policies"),
    tags: c.strMap(obj.tags, "tags"),
    agent: c.str(obj.agent, "agent") ?? "",
    outputs: c.struct(obj.outputs, "outputs"),
  });
}

function convertFr(c: Converter, obj: Record<string, unknown>): FunctionalRequirement {
  const invocation: Record<string, Invocation> = {};
  const invocations = c.mapping(obj.invocation, "invocation");
  for (const [provider, value] of Object.entries(invocations ?? {})) {
    const at = keyPath("invocation", provider);
    const inv = c.mapping(value, at);
    if (inv === undefined) continue;
    c.warnUnknown(inv, INVOCATION_KEYS, at);
    invocation[provider] = create(InvocationSchema, {
      tool: c.str(inv.tool, fieldPath(at, "tool")) ?? "",
      image: c.str(inv.image, fieldPath(at, "image")) ?? "",
      description: c.str(inv.description, fieldPath(at, "description")) ?? "",
      beforeCommand: c.str(inv.before_command, fieldPath(at, "before_command")) ?? "",
      playbookPath: c.str(inv.playbook_path, fieldPath(at, "playbook_path")) ?? "",
      ansibleRole: c.str(inv.ansible_role, fieldPath(at, "ansible_role")) ?? "",
      gatherFacts: c.bool(inv.gather_facts, fieldPath(at, "gather_facts")),
      serial: c.int(inv.serial, fieldPath(at, "serial")) ?? 0,
      connection: c.str(inv.connection, fieldPath(at, "connection")) ?? "",
      become: c.bool(inv.become, fieldPath(at, "become")) ?? false,
      waitForConnection: c.bool(inv.wait_for_connection, fieldPath(at, "wait_for_connection")) ?? false,
      command: c.strList(inv.command, fieldPath(at, "command"), "the argv list, e.g. [./deploy.sh, --verbose]"),
      workingDir: c.str(inv.working_dir, fieldPath(at, "working_dir")) ?? "",
      env: c.strMap(inv.env, fieldPath(at, "env")),
      backendConfig: c.strMap(inv.backend_config, fieldPath(at, "backend_config")),
      timeoutSeconds: c.int(inv.timeout_seconds, fieldPath(at, "timeout_seconds")) ?? 0,
      mock: c.struct(inv.mock, fieldPath(at, "mock")),
    });
  }
  return create(FunctionalRequirementSchema, {
    invocation,
    params: c.struct(obj.params, "params"),
    secrets: c.strMap(obj.secrets, "secrets"),
    outputs: c.strMap(obj.outputs, "outputs"),
    outputsFormat: c.str(obj.outputs_format, "outputs_format") ?? "",
    asGroup: c.bool(obj.as_group, "as_group") ?? false,
  });
}

function convertService(c: Converter, obj: Record<string, unknown>): Service {
  const policies = (c.list(obj.service_policies, "service_policies") ?? []).flatMap((item, index) => {
    const at = indexPath("service_policies", index);
    const entry = c.mapping(item, at);
    if (entry === undefined) return [];
    c.warnUnknown(entry, ["name", "inputs"], at);
    return [
      { name: c.str(entry.name, fieldPath(at, "name")) ?? "", inputs: c.strMap(entry.inputs, fieldPath(at, "inputs")) },
    ];
  });
  return create(ServiceSchema, {
    functionalRequirements: c.strList(obj.functional_requirements, "functional_requirements"),
    resourceRequirements: c.strMap(obj.resource_requirements, "resource_requirements"),
    params: c.struct(obj.params, "params"),
    secrets: c.strMap(obj.secrets, "secrets"),
    servicePolicies: policies,
  });
}

function convertSat(c: Converter, obj: Record<string, unknown>): StackApplicationTemplate {
  const services = (c.list(obj.services, "services") ?? []).flatMap((item, index) => {
    const at = indexPath("services", index);
    // Before STACKL 0.3 services were a list of service names, each its own alias.
    if (typeof item === "string") return [{ name: item, service: item }];
    const entry = c.mapping(item, at, "a {name, service} mapping or a service name");
    if (entry === undefined) return [];
    c.warnUnknown(entry, ["name", "service"], at);
    return [
      {
        name: c.str(entry.name, fieldPath(at, "name")) ?? "",
        service: c.str(entry.service, fieldPath(at, "service")) ?? "",
      },
    ];
  });
  const policies: StackApplicationTemplate["policies"] = {};
  for (const [name, value] of Object.entries(c.mapping(obj.policies, "policies") ?? {})) {
    const at = keyPath("policies", name);
    const list = c.list(value, at);
    const json = list === undefined ? undefined : c.json(list, at);
    policies[name] = fromJson(ListValueSchema, Array.isArray(json) ? json : []);
  }
  const stages = (c.list(obj.stages, "stages") ?? []).flatMap((item, index) => {
    const at = indexPath("stages", index);
    const entry = c.mapping(item, at);
    if (entry === undefined) return [];
    c.warnUnknown(entry, ["name", "services"], at);
    return [
      {
        name: c.str(entry.name, fieldPath(at, "name")) ?? "",
        services: c.strList(entry.services, fieldPath(at, "services")),
      },
    ];
  });
  return create(StackApplicationTemplateSchema, { services, policies, stages });
}

function convertSit(c: Converter, obj: Record<string, unknown>): StackInfrastructureTemplate {
  const targets = (c.list(obj.infrastructure_targets, "infrastructure_targets") ?? []).flatMap((item, index) => {
    const at = indexPath("infrastructure_targets", index);
    const entry = c.mapping(item, at);
    if (entry === undefined) return [];
    c.warnUnknown(entry, ["environment", "location", "zone"], at);
    return [
      {
        environment: c.str(entry.environment, fieldPath(at, "environment")) ?? "",
        location: c.str(entry.location, fieldPath(at, "location")) ?? "",
        zone: c.str(entry.zone, fieldPath(at, "zone")) ?? "",
      },
    ];
  });
  return create(StackInfrastructureTemplateSchema, { infrastructureTargets: targets });
}

function convertPolicyTemplate(c: Converter, obj: Record<string, unknown>): PolicyTemplate {
  return create(PolicyTemplateSchema, {
    policy: c.str(obj.policy, "policy") ?? "",
    inputs: c.strList(obj.inputs, "inputs"),
    outputs: c.strList(obj.outputs, "outputs"),
    regoVersion: c.str(obj.rego_version, "rego_version") ?? "",
  });
}

/** Collects violations and warnings under a document path while coercing values pydantic-style. */
class Converter {
  readonly violations: FieldViolation[] = [];
  readonly warnings: string[] = [];

  constructor(readonly path: string) {}

  /** The document only when nothing was violated: a partly converted document would mislead. */
  result(doc: Document | undefined): ConvertedDocument {
    if (doc === undefined || this.violations.length > 0)
      return { violations: this.violations, warnings: this.warnings };
    return { doc, violations: [], warnings: this.warnings };
  }

  violation(field: string, message: string): void {
    this.violations.push({ field: fieldPath(this.path, field), message });
  }

  warn(field: string, message: string): void {
    this.warnings.push(`${fieldPath(this.path, field)}: ${message}`);
  }

  warnUnknown(obj: Record<string, unknown>, known: readonly string[], at: string): void {
    for (const key of Object.keys(obj).sort()) {
      if (!known.includes(key)) this.warn(at, `unknown field ${JSON.stringify(key)} ignored`);
    }
  }

  /** A string; numbers and booleans become strings when `coerce` (pydantic `str`), null/absent is undefined. */
  str(value: unknown, field: string, coerce = true): string | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value === "string") return value;
    if (coerce && (typeof value === "number" || typeof value === "boolean") && Number.isFinite(Number(value))) {
      return String(value);
    }
    this.violation(field, `expected a string, not ${describe(value)}`);
    return undefined;
  }

  /** A mapping (null/absent is undefined). */
  mapping(value: unknown, field: string, expected = "a mapping"): Record<string, unknown> | undefined {
    if (value === undefined || value === null) return undefined;
    if (isPlainObject(value)) return value;
    this.violation(field, `expected ${expected}, not ${describe(value)}`);
    return undefined;
  }

  /** A list (null/absent is undefined). */
  list(value: unknown, field: string): unknown[] | undefined {
    if (value === undefined || value === null) return undefined;
    if (Array.isArray(value)) return value;
    this.violation(field, `expected a list, not ${describe(value)}`);
    return undefined;
  }

  /** A map of strings; scalar values are coerced to strings. */
  strMap(value: unknown, field: string): Record<string, string> {
    const entries: [string, string][] = [];
    for (const [key, item] of Object.entries(this.mapping(value, field) ?? {})) {
      const at = keyPath(field, key);
      if (item === null || item === undefined) {
        this.violation(at, "expected a string, not null");
        continue;
      }
      const text = this.str(item, at);
      if (text !== undefined) entries.push([key, text]);
    }
    return Object.fromEntries(entries);
  }

  /** A list of strings; scalar items are coerced to strings. */
  strList(value: unknown, field: string, hint?: string): string[] {
    if (typeof value === "string" && hint !== undefined) {
      this.violation(field, `expected a list of strings (${hint}), not a string`);
      return [];
    }
    const out: string[] = [];
    for (const [index, item] of (this.list(value, field) ?? []).entries()) {
      const at = indexPath(field, index);
      if (item === null || item === undefined) {
        this.violation(at, "expected a string, not null");
        continue;
      }
      const text = this.str(item, at);
      if (text !== undefined) out.push(text);
    }
    return out;
  }

  /** A JSON object (a Struct); null/absent is undefined. */
  struct(value: unknown, field: string): JsonObject | undefined {
    const map = this.mapping(value, field);
    if (map === undefined) return undefined;
    const json = this.json(map, field);
    return isPlainObject(json) ? (json as JsonObject) : undefined;
  }

  /** A map of JSON objects; a null value is an empty object (a policy without parameters). */
  structMap(value: unknown, field: string): Record<string, JsonObject> {
    const entries: [string, JsonObject][] = [];
    for (const [key, item] of Object.entries(this.mapping(value, field) ?? {})) {
      const at = keyPath(field, key);
      if (item === null || item === undefined) {
        entries.push([key, {}]);
        continue;
      }
      const struct = this.struct(item, at);
      if (struct !== undefined) entries.push([key, struct]);
    }
    return Object.fromEntries(entries);
  }

  /** A boolean as pydantic v1 read it: true/false, 1/0 and the strings true/false/yes/no/on/off/1/0/t/f/y/n. */
  bool(value: unknown, field: string): boolean | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value === "boolean") return value;
    if (value === 1 || value === 0) return value === 1;
    if (typeof value === "string") {
      const text = value.trim().toLowerCase();
      if (TRUE_STRINGS.has(text)) return true;
      if (FALSE_STRINGS.has(text)) return false;
    }
    this.violation(field, `expected a boolean, not ${describe(value)}`);
    return undefined;
  }

  /** A 32-bit integer; integral numbers and numeric strings are accepted. */
  int(value: unknown, field: string): number | undefined {
    if (value === undefined || value === null) return undefined;
    const number = typeof value === "string" && /^\s*[-+]?\d+\s*$/.test(value) ? Number(value) : value;
    if (typeof number === "number" && Number.isInteger(number) && Math.abs(number) <= 2 ** 31 - 1) return number;
    this.violation(field, `expected an integer, not ${describe(value)}`);
    return undefined;
  }

  /** `value` as JSON, with a violation for anything JSON cannot hold (YAML sets, binary, infinities, …). */
  json(value: unknown, field: string): JsonValue | undefined {
    return toJsonValue(value, fieldPath(this.path, field), this.violations);
  }
}

const TRUE_STRINGS: ReadonlySet<string> = new Set(["true", "yes", "on", "1", "t", "y"]);
const FALSE_STRINGS: ReadonlySet<string> = new Set(["false", "no", "off", "0", "f", "n"]);

/** `value` if it is plain JSON, else undefined with a violation at the offending path. */
function toJsonValue(value: unknown, path: string, violations: FieldViolation[]): JsonValue | undefined {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (Number.isFinite(value)) return value;
    violations.push({ field: path, message: `${value} is not a JSON number` });
    return undefined;
  }
  if (Array.isArray(value)) {
    const items: JsonValue[] = [];
    let ok = true;
    for (const [index, item] of value.entries()) {
      const json = toJsonValue(item, indexPath(path, index), violations);
      if (json === undefined) ok = false;
      else items.push(json);
    }
    return ok ? items : undefined;
  }
  if (isPlainObject(value)) {
    const entries: [string, JsonValue][] = [];
    let ok = true;
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined) continue;
      const json = toJsonValue(item, keyPath(path, key), violations);
      if (json === undefined) ok = false;
      else entries.push([key, json]);
    }
    return ok ? Object.fromEntries(entries) : undefined;
  }
  violations.push({ field: path, message: `${describe(value)} cannot be represented in JSON` });
  return undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (isPlainObject(value)) return "a mapping";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  if (typeof value === "number" || typeof value === "boolean") return `${typeof value} ${String(value)}`;
  if (value instanceof Map) return "a YAML map with non-string keys";
  if (value instanceof Set) return "a YAML set";
  if (value instanceof Uint8Array) return "binary data";
  return typeof value;
}

// ---------------------------------------------------------------------------------------------------------------------
// Back to the STACKL format

/**
 * The document in the original STACKL format (`stackl get -o yaml --format stackl`): `name`, `type`, `category`,
 * `description`, then the fields of the type in snake_case. Required fields of the original are always present;
 * optional ones only when set. Labels (not in the original) are written as `labels` when present; computed SIT
 * targets as `infrastructure_capabilities` (ignored when read back). Bundles are not written.
 */
export function toStacklObject(doc: Document): JsonObject {
  const kind = kindOf(doc);
  if (kind === undefined) throw new Error("toStacklObject: the document has no spec");
  const info = kindInfo(kind);
  const out: JsonObject = {
    name: doc.meta?.name ?? "",
    type: info.stacklType,
    category: info.category,
    description: doc.meta?.description ?? "",
  };
  const labels = doc.meta?.labels ?? {};
  if (Object.keys(labels).length > 0) out.labels = { ...labels };
  const spec = doc.spec;
  switch (spec.case) {
    case undefined:
      break;
    case "environment":
    case "location":
    case "zone":
      Object.assign(out, layerToStackl(spec.value));
      break;
    case "functionalRequirement":
      Object.assign(out, frToStackl(spec.value));
      break;
    case "service":
      Object.assign(out, serviceToStackl(spec.value));
      break;
    case "stackApplicationTemplate":
      Object.assign(out, satToStackl(spec.value));
      break;
    case "stackInfrastructureTemplate":
      Object.assign(out, sitToStackl(spec.value));
      break;
    case "policyTemplate":
      Object.assign(out, policyTemplateToStackl(spec.value));
      break;
    default: {
      const never: never = spec;
      throw new Error(`unhandled document spec ${JSON.stringify(never)}`);
    }
  }
  return out;
}

/** Sets `out[key]` unless `value` is empty ("", false, 0, an empty map or list, undefined). */
function put(out: JsonObject, key: string, value: JsonValue | undefined): void {
  if (value === undefined || value === "" || value === false || value === 0) return;
  if (Array.isArray(value) && value.length === 0) return;
  if (typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 0) return;
  out[key] = value;
}

function copyJson<T extends JsonValue>(value: T): T {
  return structuredClone(value);
}

function layerToStackl(layer: InfrastructureLayer): JsonObject {
  const out: JsonObject = {};
  put(out, "cloud_provider", layer.cloudProvider);
  put(out, "params", layer.params && copyJson(layer.params));
  put(out, "secrets", { ...layer.secrets });
  put(out, "resources", { ...layer.resources });
  put(out, "policies", copyJson(layer.policies));
  put(out, "tags", { ...layer.tags });
  put(out, "agent", layer.agent);
  put(out, "outputs", layer.outputs && copyJson(layer.outputs));
  return out;
}

function invocationToStackl(inv: Invocation): JsonObject {
  const out: JsonObject = { tool: inv.tool, image: inv.image };
  put(out, "description", inv.description);
  put(out, "before_command", inv.beforeCommand);
  put(out, "playbook_path", inv.playbookPath);
  put(out, "ansible_role", inv.ansibleRole);
  if (inv.gatherFacts !== undefined) out.gather_facts = inv.gatherFacts;
  put(out, "serial", inv.serial);
  put(out, "connection", inv.connection);
  put(out, "become", inv.become);
  put(out, "wait_for_connection", inv.waitForConnection);
  put(out, "command", [...inv.command]);
  put(out, "working_dir", inv.workingDir);
  put(out, "env", { ...inv.env });
  put(out, "backend_config", { ...inv.backendConfig });
  put(out, "timeout_seconds", inv.timeoutSeconds);
  put(out, "mock", inv.mock && copyJson(inv.mock));
  return out;
}

function frToStackl(fr: FunctionalRequirement): JsonObject {
  const invocation: JsonObject = {};
  for (const provider of Object.keys(fr.invocation).sort()) {
    const inv = fr.invocation[provider];
    if (inv !== undefined) invocation[provider] = invocationToStackl(inv);
  }
  const out: JsonObject = { invocation };
  put(out, "params", fr.params && copyJson(fr.params));
  put(out, "secrets", { ...fr.secrets });
  put(out, "outputs", { ...fr.outputs });
  put(out, "outputs_format", fr.outputsFormat);
  put(out, "as_group", fr.asGroup);
  return out;
}

function serviceToStackl(service: Service): JsonObject {
  const out: JsonObject = { functional_requirements: [...service.functionalRequirements] };
  put(out, "resource_requirements", { ...service.resourceRequirements });
  put(out, "params", service.params && copyJson(service.params));
  put(out, "secrets", { ...service.secrets });
  put(
    out,
    "service_policies",
    service.servicePolicies.map((p) => ({ name: p.name, inputs: { ...p.inputs } })),
  );
  return out;
}

function satToStackl(sat: StackApplicationTemplate): JsonObject {
  const out: JsonObject = { services: sat.services.map((s) => ({ name: s.name, service: s.service })) };
  const policies: JsonObject = {};
  for (const name of Object.keys(sat.policies).sort()) {
    const list = sat.policies[name];
    policies[name] = list === undefined ? [] : toJson(ListValueSchema, list);
  }
  put(out, "policies", policies);
  put(
    out,
    "stages",
    sat.stages.map((s) => ({ name: s.name, services: [...s.services] })),
  );
  return out;
}

function sitToStackl(sit: StackInfrastructureTemplate): JsonObject {
  const out: JsonObject = {
    infrastructure_targets: sit.infrastructureTargets.map((t) => ({
      environment: t.environment,
      location: t.location,
      zone: t.zone,
    })),
  };
  if (sit.targets.length > 0) {
    const capabilities: JsonObject = {};
    for (const target of sit.targets) {
      capabilities[target.key] = {
        provisioning_parameters: copyJson(target.params ?? {}),
        cloud_provider: target.cloudProvider,
        secrets: { ...target.secrets },
        resources: { ...target.resources },
        policies: copyJson(target.policies),
        agent: target.agent,
        tags: { ...target.tags },
      };
    }
    out.infrastructure_capabilities = capabilities;
  }
  return out;
}

function policyTemplateToStackl(policy: PolicyTemplate): JsonObject {
  const out: JsonObject = { policy: policy.policy, inputs: [...policy.inputs] };
  put(out, "outputs", [...policy.outputs]);
  put(out, "rego_version", policy.regoVersion);
  return out;
}
