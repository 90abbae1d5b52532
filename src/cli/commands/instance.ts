/**
 * What the stack-instance commands (`plan`, `create instance`, `update instance`, `apply -c`, `outputs`) read from
 * the command line and from manifests, turned into a `StackInstanceSpec`:
 *
 * - option values: `-p key=value` (the value is JSON when it parses as JSON — `8080`, `true`, `null`, `"007"`,
 *   `[1,2]`, `{"a":1}` —, a YAML flow collection when it starts with `[` or `{` — `[a, b]`, `{a: 1}` —, else the
 *   text), `-p key=@file` (the file's YAML/JSON content for .yaml/.yml/.json, its text otherwise), `-p @file.yaml`
 *   (a mapping merged in), `-p '{"a": 1}'` (the original CLI's JSON object); `--tags k=v[,k=v]`,
 *   `--replicas alias=N[,alias=N]`, `--secret k=ref`, `--service alias=service`, `--stage name=a,b`,
 *   `--service-param alias.key=value`, `--service-secret alias.key=ref` (each also as a JSON object or `@file`);
 * - the original STACKL `stackl apply -c MANIFEST NAME` manifest: `stack_application_template`,
 *   `stack_infrastructure_template`, `params`, `secrets`, `service_params`, `service_secrets`, `replicas`, `tags`,
 *   `services`, `stages` (YAML read like PyYAML read it, or JSON), checked with field paths.
 *
 * Parsers throw commander's InvalidArgumentError (a usage error, exit 2); manifest problems are returned.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import type { JsonObject, JsonValue, MessageInitShape } from "@bufbuild/protobuf";
import { type Command, InvalidArgumentError, Option } from "commander";
import {
  type DocumentOptions,
  type ParseOptions,
  parseAllDocuments,
  parseDocument,
  type ScalarTag,
  type SchemaOptions,
  type Tags,
} from "yaml";
import type { StackInstanceSpecSchema } from "../../../gen/stackl/v1/stack_instances_pb.js";

/** A service beyond the template: alias and service document. */
export interface ServiceRefInput {
  name: string;
  service: string;
}

export interface StageInput {
  name: string;
  services: string[];
}

/** Everything a create/plan/update request can carry, as plain values. */
export interface InstanceInput {
  params: JsonObject;
  secrets: Record<string, string>;
  serviceParams: Record<string, JsonObject>;
  serviceSecrets: Record<string, Record<string, string>>;
  tags: Record<string, string>;
  replicas: Record<string, number>;
  services: ServiceRefInput[];
  stages: StageInput[];
}

export function emptyInput(): InstanceInput {
  return {
    params: {},
    secrets: {},
    serviceParams: {},
    serviceSecrets: {},
    tags: {},
    replicas: {},
    services: [],
    stages: [],
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Values and files

const YAML_12: DocumentOptions & ParseOptions & SchemaOptions = { version: "1.2", prettyErrors: true };

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** YAML text (1.2) to a JSON value; throws with the first line of the YAML error. */
function yamlValue(text: string, where: string): JsonValue {
  const doc = parseDocument(text, YAML_12);
  const error = doc.errors[0];
  if (error !== undefined) throw new InvalidArgumentError(`${where}: invalid YAML: ${firstLine(error.message)}`);
  return jsonSafe(doc.toJS(), where);
}

function firstLine(message: string): string {
  return (message.split("\n")[0] ?? message).replace(/:$/, "");
}

/** Rejects what JSON cannot carry (dates from YAML timestamps are already off; non-finite numbers, undefined). */
function jsonSafe(value: unknown, where: string): JsonValue {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new InvalidArgumentError(`${where}: ${value} is not a JSON number`);
    return value;
  }
  if (Array.isArray(value)) return value.map((v, i) => jsonSafe(v, `${where}[${i}]`));
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "object") {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = jsonSafe(v, `${where}.${k}`);
    return out;
  }
  throw new InvalidArgumentError(`${where}: ${typeof value} is not a JSON value`);
}

function readFileText(file: string): string {
  return readFileSync(file, "utf8");
}

function readArgumentFile(file: string): string {
  if (file === "") throw new InvalidArgumentError("expected a file name after @");
  try {
    return readFileText(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "no such file" : err instanceof Error ? err.message : String(err);
    throw new InvalidArgumentError(`@${file}: ${reason}`);
  }
}

/** The content of `@file`: JSON for .json, YAML for .yaml/.yml, text otherwise (`structuredOnly` refuses text). */
export function fileValue(file: string, structuredOnly = false): JsonValue {
  const text = readArgumentFile(file);
  const ext = path.extname(file).toLowerCase();
  if (ext === ".json") {
    try {
      return JSON.parse(text) as JsonValue;
    } catch (err) {
      throw new InvalidArgumentError(`@${file}: invalid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (ext === ".yaml" || ext === ".yml" || structuredOnly) return yamlValue(text, `@${file}`);
  return text;
}

/** A mapping from `@file` (YAML or JSON). */
function fileMapping(file: string): JsonObject {
  const value = fileValue(file, true);
  if (value === null) return {};
  if (!isObject(value)) throw new InvalidArgumentError(`@${file}: expected a mapping, got ${describe(value)}`);
  return value;
}

/**
 * The value of `key=value`: JSON when it parses as JSON, a YAML flow collection when it starts with `[` or `{`,
 * `@file` content, `@@text` for a literal leading `@`, else the text itself (so `0080`, `2.4.1`, `yes` stay strings).
 */
export function parseValue(text: string): JsonValue {
  if (text.startsWith("@@")) return text.slice(1);
  if (text.startsWith("@")) return fileValue(text.slice(1));
  const trimmed = text.trim();
  if (trimmed !== "") {
    try {
      return JSON.parse(trimmed) as JsonValue;
    } catch {
      // not JSON
    }
    if (trimmed.startsWith("[") || trimmed.startsWith("{")) return yamlValue(trimmed, JSON.stringify(text));
  }
  return text;
}

/** A mapping given inline: a JSON object or a YAML flow mapping (`{a: 1}`), as the original CLI's `-p '{…}'`. */
function inlineMapping(text: string): JsonObject {
  const value = yamlValue(text.trim(), "value");
  if (!isObject(value)) throw new InvalidArgumentError(`expected a mapping, got ${describe(value)}`);
  return value;
}

/** `key=value` split at the first `=`; the key must not be empty. */
function splitPair(text: string, shape: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0 || text.slice(0, eq).trim() === "") {
    throw new InvalidArgumentError(`expected ${shape}, got ${JSON.stringify(text)}`);
  }
  return [text.slice(0, eq).trim(), text.slice(eq + 1)];
}

/** `a=1,b=2` pairs (comma-separated; empty parts skipped). */
function splitPairs(text: string, shape: string): [string, string][] {
  return text
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "")
    .map((p) => {
      const [k, v] = splitPair(p, shape);
      return [k, v.trim()];
    });
}

/** A mapping argument: `@file`, an inline JSON/YAML mapping, or undefined (caller parses pairs). */
function mappingForm(text: string): JsonObject | undefined {
  const trimmed = text.trim();
  if (trimmed.startsWith("@") && !trimmed.startsWith("@@")) return fileMapping(trimmed.slice(1));
  if (trimmed.startsWith("{")) return inlineMapping(trimmed);
  return undefined;
}

function stringMap(obj: JsonObject, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) out[k] = scalarString(v, `${what} ${JSON.stringify(k)}`);
  return out;
}

/** Strings as they are, numbers and booleans as text (pydantic coerced them); anything else is an error. */
function scalarString(value: JsonValue | undefined, what: string): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  throw new InvalidArgumentError(`${what}: expected a string, got ${describe(value)}`);
}

// ---------------------------------------------------------------------------------------------------------------------
// Option parsers (commander: `(value, previous) => accumulated`)

/** `-p key=value`, `-p key=@file`, `-p @file.yaml`, `-p '{"key": …}'`; later values win. */
export function parseParamArgument(text: string, previous: JsonObject = {}): JsonObject {
  const mapping = mappingForm(text);
  if (mapping !== undefined) return { ...previous, ...mapping };
  const [key, value] = splitPair(text, "key=value, @file or a JSON object");
  return { ...previous, [key]: parseValue(value) };
}

/** `--secret key=reference` (references, never values), `@file`, or a JSON object. */
export function parseSecretArgument(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const mapping = mappingForm(text);
  if (mapping !== undefined) return { ...previous, ...stringMap(mapping, "secret") };
  const [key, value] = splitPair(text, "key=reference, @file or a JSON object");
  if (value === "") throw new InvalidArgumentError(`secret ${JSON.stringify(key)}: the reference is empty`);
  return { ...previous, [key]: value };
}

/** `--tags key=value[,key=value]`, `@file`, or a JSON object (values as strings). */
export function parseTagsArgument(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const mapping = mappingForm(text);
  if (mapping !== undefined) return { ...previous, ...stringMap(mapping, "tag") };
  return { ...previous, ...Object.fromEntries(splitPairs(text, "key=value")) };
}

/** A replica count: a positive integer (also as a string, as pydantic accepted). */
export function replicaCount(value: JsonValue | undefined, what: string): number {
  const n = typeof value === "string" && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1 || n > 2 ** 31 - 1) {
    throw new InvalidArgumentError(`${what}: expected a positive integer, got ${describe(value)}`);
  }
  return n;
}

/** `--replicas alias=N[,alias=N]`, `@file`, or a JSON object. */
export function parseReplicasArgument(text: string, previous: Record<string, number> = {}): Record<string, number> {
  const mapping = mappingForm(text);
  const out = { ...previous };
  if (mapping !== undefined) {
    for (const [alias, n] of Object.entries(mapping)) out[alias] = replicaCount(n, `replicas of ${alias}`);
    return out;
  }
  for (const [alias, n] of splitPairs(text, "alias=N")) out[alias] = replicaCount(n, `replicas of ${alias}`);
  return out;
}

function serviceRef(value: JsonValue | undefined, what: string): ServiceRefInput {
  if (typeof value === "string" && value !== "") return { name: value, service: value };
  if (isObject(value)) {
    const name = value.name;
    const service = value.service ?? name;
    if (typeof name !== "string" || name === "") throw new InvalidArgumentError(`${what}.name: is required`);
    if (typeof service !== "string" || service === "") {
      throw new InvalidArgumentError(`${what}.service: expected a service name, got ${describe(service)}`);
    }
    return { name, service };
  }
  throw new InvalidArgumentError(`${what}: expected {name, service} or a service name, got ${describe(value)}`);
}

function upsertService(list: readonly ServiceRefInput[], ref: ServiceRefInput): ServiceRefInput[] {
  const i = list.findIndex((s) => s.name === ref.name);
  if (i < 0) return [...list, ref];
  const out = [...list];
  out[i] = ref;
  return out;
}

/** `--service alias=service` (or `--service name` when alias and service are equal); a JSON list of {name, service}. */
export function parseServiceArgument(text: string, previous: ServiceRefInput[] = []): ServiceRefInput[] {
  const trimmed = text.trim();
  let refs: ServiceRefInput[];
  if (trimmed.startsWith("[") || (trimmed.startsWith("@") && !trimmed.startsWith("@@"))) {
    const value = trimmed.startsWith("@") ? fileValue(trimmed.slice(1), true) : yamlValue(trimmed, "services");
    if (!Array.isArray(value))
      throw new InvalidArgumentError(`expected a list of {name, service}, got ${describe(value)}`);
    refs = value.map((v, i) => serviceRef(v, `services[${i}]`));
  } else if (trimmed.startsWith("{")) {
    refs = [serviceRef(inlineMapping(trimmed), "service")];
  } else if (trimmed.includes("=")) {
    const [name, service] = splitPair(trimmed, "alias=service");
    if (service.trim() === "") throw new InvalidArgumentError(`service ${JSON.stringify(name)}: the service is empty`);
    refs = [{ name, service: service.trim() }];
  } else if (trimmed !== "") {
    refs = [{ name: trimmed, service: trimmed }];
  } else {
    throw new InvalidArgumentError("expected alias=service");
  }
  return refs.reduce(upsertService, previous);
}

/** `--stage name=alias,alias` (repeatable, in order); a later stage with the same name replaces it. */
export function parseStageArgument(text: string, previous: StageInput[] = []): StageInput[] {
  const [name, list] = splitPair(text.trim(), "name=alias,alias,…");
  const services = list
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (services.length === 0) throw new InvalidArgumentError(`stage ${JSON.stringify(name)}: no services listed`);
  const out = previous.filter((s) => s.name !== name);
  return [...out, { name, services }];
}

/**
 * `--service-param alias.key=value` (value as for -p), `--service-param alias=@file.yaml` (a mapping), or a mapping
 * `{alias: {key: value}}` inline or from `@file`. Merged per alias (later keys win).
 */
export function parseServiceParamArgument(
  text: string,
  previous: Record<string, JsonObject> = {},
): Record<string, JsonObject> {
  const out: Record<string, JsonObject> = { ...previous };
  const mapping = mappingForm(text);
  if (mapping !== undefined) {
    for (const [alias, params] of Object.entries(mapping)) {
      if (!isObject(params)) {
        throw new InvalidArgumentError(
          `service params of ${JSON.stringify(alias)}: expected a mapping, got ${describe(params)}`,
        );
      }
      out[alias] = { ...(out[alias] ?? {}), ...params };
    }
    return out;
  }
  const [left, value] = splitPair(text, "alias.key=value, alias=@file or a JSON object");
  const dot = left.indexOf(".");
  if (dot < 0) {
    const params = value.startsWith("@") && !value.startsWith("@@") ? fileMapping(value.slice(1)) : undefined;
    if (params === undefined) {
      throw new InvalidArgumentError(`expected alias.key=value or alias=@file, got ${JSON.stringify(text)}`);
    }
    out[left] = { ...(out[left] ?? {}), ...params };
    return out;
  }
  const alias = left.slice(0, dot);
  const key = left.slice(dot + 1);
  if (alias === "" || key === "")
    throw new InvalidArgumentError(`expected alias.key=value, got ${JSON.stringify(text)}`);
  out[alias] = { ...(out[alias] ?? {}), [key]: parseValue(value) };
  return out;
}

/** `--service-secret alias.key=reference`, or a mapping `{alias: {key: reference}}` inline or from `@file`. */
export function parseServiceSecretArgument(
  text: string,
  previous: Record<string, Record<string, string>> = {},
): Record<string, Record<string, string>> {
  const out = { ...previous };
  const mapping = mappingForm(text);
  if (mapping !== undefined) {
    for (const [alias, secrets] of Object.entries(mapping)) {
      if (!isObject(secrets)) {
        throw new InvalidArgumentError(
          `service secrets of ${JSON.stringify(alias)}: expected a mapping, got ${describe(secrets)}`,
        );
      }
      out[alias] = { ...(out[alias] ?? {}), ...stringMap(secrets, `secret of ${alias}`) };
    }
    return out;
  }
  const [left, value] = splitPair(text, "alias.key=reference or a JSON object");
  const dot = left.indexOf(".");
  if (dot <= 0 || dot === left.length - 1) {
    throw new InvalidArgumentError(`expected alias.key=reference, got ${JSON.stringify(text)}`);
  }
  if (value === "") throw new InvalidArgumentError(`secret ${JSON.stringify(left)}: the reference is empty`);
  const alias = left.slice(0, dot);
  out[alias] = { ...(out[alias] ?? {}), [left.slice(dot + 1)]: value };
  return out;
}

/** The spec option values, as commander collects them (hidden aliases keep the original CLI's spellings). */
export interface InstanceOptionValues {
  params?: JsonObject;
  secret?: Record<string, string>;
  secrets?: Record<string, string>;
  serviceParam?: Record<string, JsonObject>;
  serviceParams?: Record<string, JsonObject>;
  serviceSecret?: Record<string, Record<string, string>>;
  serviceSecrets?: Record<string, Record<string, string>>;
  tags?: Record<string, string>;
  replicas?: Record<string, number>;
  service?: ServiceRefInput[];
  services?: ServiceRefInput[];
  stage?: StageInput[];
}

export interface SpecOptionSet {
  /** --secret and --service-secret. @default true */
  secrets?: boolean;
  /** --stage. @default true */
  stages?: boolean;
}

const hidden = (flags: string, description: string, parse: (value: string, previous: never) => unknown): Option =>
  new Option(flags, description).hideHelp().argParser(parse as (value: string, previous: unknown) => unknown);

/**
 * Adds the options that fill a StackInstanceSpec: -p/--params, --secret, -e/--service-param, --service-secret,
 * -t/--tags, -r/--replicas, --service, --stage (each repeatable), and hidden aliases with the original CLI's
 * spellings (--secrets, --service-params, --service-secrets, --services).
 */
export function addSpecOptions(command: Command, set: SpecOptionSet = {}): Command {
  command
    .option(
      "-p, --params <key=value>",
      "a parameter (repeatable): key=value (JSON values such as 8080, true, [1,2] are typed; other text stays a string), key=@file, @file.yaml (a mapping), or a JSON object",
      parseParamArgument,
    )
    .option(
      "-e, --service-param <alias.key=value>",
      "a parameter for one service alias (repeatable): alias.key=value, alias=@file.yaml, or {alias: {key: value}}",
      parseServiceParamArgument,
    )
    .option(
      "-t, --tags <key=value>",
      "required tags for placement (repeatable, comma-separated; the value all matches any)",
      parseTagsArgument,
    )
    .option(
      "-r, --replicas <alias=N>",
      "replicas of a service alias, each on its own target (repeatable, comma-separated; default 1)",
      parseReplicasArgument,
    )
    .option(
      "--service <alias=service>",
      "an extra service beyond the template (repeatable): alias=service document, or a name used for both",
      parseServiceArgument,
    )
    .addOption(hidden("--services <list>", "extra services as a JSON list of {name, service}", parseServiceArgument))
    .addOption(hidden("--service-params <json>", "service params as a JSON object", parseServiceParamArgument));
  if (set.stages !== false) {
    command.option(
      "--stage <name=alias,alias>",
      "a stage: services that run in parallel (repeatable, in order; replaces the template's stages)",
      parseStageArgument,
    );
  }
  if (set.secrets !== false) {
    command
      .option(
        "--secret <key=reference>",
        "a secret reference (repeatable; references such as vault paths, never values)",
        parseSecretArgument,
      )
      .option(
        "--service-secret <alias.key=reference>",
        "a secret reference for one service alias (repeatable)",
        parseServiceSecretArgument,
      )
      .addOption(hidden("--secrets <json>", "secret references as a JSON object", parseSecretArgument))
      .addOption(hidden("--service-secrets <json>", "service secrets as a JSON object", parseServiceSecretArgument));
  }
  return command;
}

/** The command-line values alone. */
export function inputFromOptions(opts: InstanceOptionValues): InstanceInput {
  return mergeInput(
    {
      params: {},
      secrets: opts.secrets ?? {},
      serviceParams: opts.serviceParams ?? {},
      serviceSecrets: opts.serviceSecrets ?? {},
      tags: {},
      replicas: {},
      services: opts.services ?? [],
      stages: [],
    },
    {
      params: opts.params ?? {},
      secrets: opts.secret ?? {},
      serviceParams: opts.serviceParam ?? {},
      serviceSecrets: opts.serviceSecret ?? {},
      tags: opts.tags ?? {},
      replicas: opts.replicas ?? {},
      services: opts.service ?? [],
      stages: opts.stage ?? [],
    },
  );
}

/**
 * `base` (a manifest) overridden by the command line, as the original CLI did: params, secrets, tags and replicas
 * shallow-merged; service params and secrets merged per alias; services added or replaced by alias; stages replaced
 * when any is given.
 */
export function mergeInput(base: InstanceInput, over: InstanceInput): InstanceInput {
  const perAlias = <T extends object>(a: Record<string, T>, b: Record<string, T>): Record<string, T> => {
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = { ...(a[k] ?? {}), ...v };
    return out;
  };
  return {
    params: { ...base.params, ...over.params },
    secrets: { ...base.secrets, ...over.secrets },
    serviceParams: perAlias(base.serviceParams, over.serviceParams),
    serviceSecrets: perAlias(base.serviceSecrets, over.serviceSecrets),
    tags: { ...base.tags, ...over.tags },
    replicas: { ...base.replicas, ...over.replicas },
    services: over.services.reduce(upsertService, base.services),
    stages: over.stages.length > 0 ? over.stages : base.stages,
  };
}

/** The request's spec (StackInstanceSpec). */
export function specOf(
  name: string,
  sat: string,
  sit: string,
  input: InstanceInput,
): MessageInitShape<typeof StackInstanceSpecSchema> {
  return {
    name,
    stackApplicationTemplate: sat,
    stackInfrastructureTemplate: sit,
    params: input.params,
    secrets: input.secrets,
    serviceParams: input.serviceParams,
    serviceSecrets: Object.fromEntries(Object.entries(input.serviceSecrets).map(([a, s]) => [a, { secrets: s }])),
    tags: input.tags,
    replicas: input.replicas,
    services: input.services,
    stages: input.stages,
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// The original manifest (`stackl apply -c MANIFEST NAME`)

/** A manifest, read and checked. */
export interface Manifest {
  /** `name` or `stack_instance_name`, when the manifest names the instance. */
  name?: string;
  sat?: string;
  sit?: string;
  input: InstanceInput;
}

export interface ManifestProblem {
  /** Path inside the manifest (`replicas.web`, `stages[0].services[1]`), `` for the whole file. */
  field: string;
  message: string;
}

export interface ManifestResult {
  manifest?: Manifest;
  problems: ManifestProblem[];
  warnings: string[];
}

/** Keys of the original manifest, and the aliases this CLI adds. */
export const MANIFEST_KEYS = [
  "stack_application_template",
  "stack_infrastructure_template",
  "params",
  "secrets",
  "service_params",
  "service_secrets",
  "replicas",
  "tags",
  "services",
  "stages",
  "name",
  "stack_instance_name",
] as const;

// PyYAML (which read the original manifests) resolves fewer plain scalars than the YAML 1.1 schema: no y/n booleans,
// no float without a dot, and timestamps stay strings.
const PYYAML_TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const PYYAML_FALSE = /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/;
const PYYAML_EXP_FLOAT = /^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*[eE][-+][0-9]+$/;
const PYYAML: DocumentOptions & ParseOptions & SchemaOptions = {
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
      if (scalar.tag === "tag:yaml.org,2002:float" && scalar.format === "EXP")
        return [{ ...scalar, test: PYYAML_EXP_FLOAT }];
      return [scalar];
    }),
};

/** Reads a manifest's text (JSON when `fileName` ends in .json, else YAML as PyYAML read it). */
export function parseManifest(text: string, fileName: string): ManifestResult {
  let value: unknown;
  if (/\.json$/i.test(fileName)) {
    try {
      value = JSON.parse(text);
    } catch (err) {
      return {
        problems: [{ field: "", message: `invalid JSON: ${err instanceof Error ? err.message : String(err)}` }],
        warnings: [],
      };
    }
  } else {
    const docs = parseAllDocuments(text, PYYAML);
    const nonEmpty: unknown[] = [];
    for (const doc of docs) {
      const error = doc.errors[0];
      if (error !== undefined) {
        return { problems: [{ field: "", message: `invalid YAML: ${firstLine(error.message)}` }], warnings: [] };
      }
      let js: unknown;
      try {
        js = doc.toJS();
      } catch (err) {
        return { problems: [{ field: "", message: `invalid YAML: ${firstLine(String(err))}` }], warnings: [] };
      }
      if (js !== null && js !== undefined) nonEmpty.push(js);
    }
    if (nonEmpty.length > 1) {
      return {
        problems: [{ field: "", message: "holds several YAML documents; a manifest is one mapping" }],
        warnings: [],
      };
    }
    value = nonEmpty[0] ?? null;
  }
  return manifestFromObject(value);
}

/** Checks a manifest object: every problem with its field path; unknown keys are warnings. */
export function manifestFromObject(value: unknown): ManifestResult {
  const problems: ManifestProblem[] = [];
  const warnings: string[] = [];
  if (value === null || value === undefined)
    return { problems: [{ field: "", message: "the manifest is empty" }], warnings };
  if (!isObject(value as JsonValue)) {
    return { problems: [{ field: "", message: `expected a mapping, got ${describe(value)}` }], warnings };
  }
  const obj = value as JsonObject;
  const problem = (field: string, message: string): void => {
    problems.push({ field, message });
  };
  const input = emptyInput();
  const known = new Set<string>(MANIFEST_KEYS);
  for (const key of Object.keys(obj)) {
    if (!known.has(key))
      warnings.push(`${key}: unknown key, ignored (known keys: ${MANIFEST_KEYS.slice(0, 10).join(", ")})`);
  }

  const str = (key: string): string | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string" || v === "") {
      problem(key, `expected a name, got ${describe(v)}`);
      return undefined;
    }
    return v;
  };
  const mapping = (key: string): JsonObject | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (!isObject(v)) {
      problem(key, `expected a mapping, got ${describe(v)}`);
      return undefined;
    }
    return v;
  };
  const strings = (m: JsonObject, at: string): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(m)) {
      if (typeof v === "string") out[k] = v;
      else if (typeof v === "number" || typeof v === "boolean") out[k] = String(v);
      else problem(`${at}.${k}`, `expected a string, got ${describe(v)}`);
    }
    return out;
  };

  const sat = str("stack_application_template");
  const sit = str("stack_infrastructure_template");
  const name = str("stack_instance_name") ?? str("name");

  input.params = mapping("params") ?? {};
  const secrets = mapping("secrets");
  if (secrets !== undefined) input.secrets = strings(secrets, "secrets");
  const serviceParams = mapping("service_params");
  for (const [alias, params] of Object.entries(serviceParams ?? {})) {
    if (params === null) continue;
    if (!isObject(params)) problem(`service_params.${alias}`, `expected a mapping, got ${describe(params)}`);
    else input.serviceParams[alias] = params;
  }
  const serviceSecrets = mapping("service_secrets");
  for (const [alias, list] of Object.entries(serviceSecrets ?? {})) {
    if (list === null) continue;
    if (!isObject(list)) problem(`service_secrets.${alias}`, `expected a mapping, got ${describe(list)}`);
    else input.serviceSecrets[alias] = strings(list, `service_secrets.${alias}`);
  }
  const replicas = mapping("replicas");
  for (const [alias, n] of Object.entries(replicas ?? {})) {
    try {
      input.replicas[alias] = replicaCount(n, "replicas");
    } catch {
      problem(`replicas.${alias}`, `expected a positive integer, got ${describe(n)}`);
    }
  }
  const tags = mapping("tags");
  if (tags !== undefined) input.tags = strings(tags, "tags");

  const services = obj.services;
  if (services !== undefined && services !== null) {
    if (!Array.isArray(services)) problem("services", `expected a list of {name, service}, got ${describe(services)}`);
    else {
      services.forEach((item, i) => {
        const at = `services[${i}]`;
        if (typeof item === "string" && item !== "") {
          input.services.push({ name: item, service: item });
          return;
        }
        if (!isObject(item)) {
          problem(at, `expected {name, service}, got ${describe(item)}`);
          return;
        }
        const n = item.name;
        const s = item.service ?? n;
        if (typeof n !== "string" || n === "")
          problem(`${at}.name`, n === undefined ? "is required" : `expected a name, got ${describe(n)}`);
        else if (typeof s !== "string" || s === "")
          problem(`${at}.service`, `expected a service name, got ${describe(s)}`);
        else if (input.services.some((x) => x.name === n))
          problem(`${at}.name`, `alias ${JSON.stringify(n)} is listed twice`);
        else input.services.push({ name: n, service: s });
      });
    }
  }

  const stages = obj.stages;
  if (stages !== undefined && stages !== null) {
    if (!Array.isArray(stages)) problem("stages", `expected a list of {name, services}, got ${describe(stages)}`);
    else {
      stages.forEach((item, i) => {
        const at = `stages[${i}]`;
        if (!isObject(item)) {
          problem(at, `expected {name, services}, got ${describe(item)}`);
          return;
        }
        const n = item.name;
        const list = item.services;
        let ok = true;
        if (typeof n !== "string" || n === "") {
          problem(`${at}.name`, n === undefined ? "is required" : `expected a name, got ${describe(n)}`);
          ok = false;
        }
        if (!Array.isArray(list)) {
          problem(
            `${at}.services`,
            list === undefined ? "is required" : `expected a list of aliases, got ${describe(list)}`,
          );
          return;
        }
        const aliases: string[] = [];
        list.forEach((a, j) => {
          if (typeof a !== "string" || a === "") {
            problem(`${at}.services[${j}]`, `expected an alias, got ${describe(a)}`);
            ok = false;
          } else aliases.push(a);
        });
        if (ok) input.stages.push({ name: n as string, services: aliases });
      });
    }
  }

  if (problems.length > 0) return { problems, warnings };
  return {
    manifest: {
      ...(name === undefined ? {} : { name }),
      ...(sat === undefined ? {} : { sat }),
      ...(sit === undefined ? {} : { sit }),
      input,
    },
    problems,
    warnings,
  };
}

/** Reads and checks the manifest file (or `-` for stdin text given as `stdin`). */
export function readManifest(file: string, stdin?: string): ManifestResult {
  let text: string;
  if (file === "-") text = stdin ?? "";
  else {
    try {
      text = readFileText(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return {
        problems: [
          { field: "", message: code === "ENOENT" ? "no such file" : err instanceof Error ? err.message : String(err) },
        ],
        warnings: [],
      };
    }
  }
  return parseManifest(text, file);
}

/** `file: field: message`. */
export function formatManifestProblem(file: string, problem: ManifestProblem): string {
  return problem.field === "" ? `${file}: ${problem.message}` : `${file}: ${problem.field}: ${problem.message}`;
}
