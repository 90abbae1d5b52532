import { readFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { HANDLER_NAMES, type HandlerName, isHandlerName } from "./handler.js";
import type { HandlerBinaries } from "./handler-registry.js";
import { OptionsError } from "./options-error.js";
import { DEFAULT_DRAIN_TIMEOUT_MS } from "./session.js";
import { AGENT_VERSION } from "./version.js";

/**
 * `stackl-agent` configuration from flags, environment and a config file (YAML or JSON), in that order of
 * precedence, validated into an AgentConfig. Every option `--foo-bar` is also `STACKL_AGENT_FOO_BAR` and
 * `foo-bar:` in the config file (except --config itself, which is also STACKL_AGENT_CONFIG, --help and --version).
 */

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface AgentConfig {
  /** Control plane URL, `http://` (h2c) or `https://`. */
  server: string;
  /** @default the host name */
  name: string;
  /** @default "default" */
  pool: string;
  /** @default {} */
  labels: Record<string, string>;
  /** Maximum concurrent jobs. @default 4 */
  capacity: number;
  /** Enrollment token (first run only). @default undefined */
  enrollmentToken: string | undefined;
  /** @default ~/.stackl-agent */
  stateDir: string;
  /** @default <state-dir>/work */
  workDir: string;
  /** Handlers to offer; undefined = shell plus every tool handler whose binary is found. */
  handlers: HandlerName[] | undefined;
  binaries: HandlerBinaries;
  /** @default DEFAULT_DRAIN_TIMEOUT_MS (5 min) */
  drainTimeoutMs: number;
  /** PEM file of the CA that signed the server's certificate. @default system CAs */
  caFile: string | undefined;
  /** @default "info" */
  logLevel: LogLevel;
}

export type CliResult =
  | { kind: "help"; text: string }
  | { kind: "version"; text: string }
  | { kind: "run"; config: AgentConfig };

/** Options that take a value (name → help). Order = order in --help. */
const VALUE_OPTIONS = {
  server: ["URL", "control plane URL: http://host:port (h2c) or https://host:port (TLS)"],
  name: ["NAME", "agent name (default: the host name)"],
  pool: ["POOL", 'pool the agent serves (default: "default")'],
  labels: ["K=V,...", "labels, e.g. zone=eu-1,disk=ssd"],
  capacity: ["N", "maximum concurrent jobs, 1-1024 (default: 4)"],
  token: ["TOKEN", "single-use enrollment token, used on the first run only"],
  "token-file": ["FILE", "read the enrollment token from FILE"],
  "state-dir": ["DIR", "agent state: credential (0600) and job journal (default: ~/.stackl-agent)"],
  "work-dir": ["DIR", "job working directories (default: <state-dir>/work)"],
  config: ["FILE", "config file, YAML or JSON, keys as the long option names"],
  handlers: ["LIST", `handlers to offer, from ${HANDLER_NAMES.join(",")} (default: shell + tools found on PATH)`],
  "tofu-bin": ["PATH", "OpenTofu binary (default: tofu on PATH)"],
  "terraform-bin": ["PATH", "Terraform binary (default: terraform on PATH)"],
  "ansible-playbook-bin": ["PATH", "ansible-playbook binary (default: on PATH)"],
  "drain-timeout": ["DURATION", "on SIGTERM, how long running jobs may finish before they are stopped (default: 5m)"],
  "ca-file": ["FILE", "PEM CA certificate(s) to verify an https:// server"],
  "log-level": ["LEVEL", `${LOG_LEVELS.join(", ")} (default: info)`],
} as const;

type ValueOption = keyof typeof VALUE_OPTIONS;
const VALUE_OPTION_NAMES = Object.keys(VALUE_OPTIONS) as ValueOption[];

export function helpText(): string {
  const lines = [
    `stackl-agent ${AGENT_VERSION}: runs STACKL jobs (shell, OpenTofu/Terraform, Ansible) for a control plane.`,
    "",
    "Usage: stackl-agent --server URL [--token TOKEN] [options]",
    "",
    "Options (each also STACKL_AGENT_<NAME> in the environment, and <name>: in the --config file):",
  ];
  for (const name of VALUE_OPTION_NAMES) {
    const [value, help] = VALUE_OPTIONS[name];
    lines.push(`  --${`${name} ${value}`.padEnd(30)} ${help}`);
  }
  lines.push(`  ${"-h, --help".padEnd(32)} show this help`, `  ${"-V, --version".padEnd(32)} print the version`);
  lines.push(
    "",
    "Durations: 500ms, 30s, 5m, 1h. Precedence: flags, then environment, then config file.",
    "SIGTERM/SIGINT drain the agent (no new jobs; running jobs finish, bounded by --drain-timeout); a second",
    "signal stops the running jobs at once.",
  );
  return `${lines.join("\n")}\n`;
}

/** `500ms`, `30s`, `5m`, `1h`, `0` → milliseconds. */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (text.trim() === "0") return 0;
  if (!m) throw new OptionsError(`${option} must be a duration like 500ms, 30s, 5m or 1h, got "${text}"`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
  return Math.round(Number(m[1]) * unit);
}

/** `k=v,k2=v2` → record. */
export function parseLabels(text: string, option: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(",")) {
    const item = part.trim();
    if (item === "") continue;
    const eq = item.indexOf("=");
    const key = eq === -1 ? item : item.slice(0, eq).trim();
    if (eq === -1 || !/^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/.test(key)) {
      throw new OptionsError(`${option}: "${item}" is not key=value with a key of letters, digits, . _ / -`);
    }
    out[key] = item.slice(eq + 1).trim();
  }
  return out;
}

function expandHome(p: string): string {
  if (p === "~") return homedir();
  if (p.startsWith("~/")) return path.join(homedir(), p.slice(2));
  return path.resolve(p);
}

function envName(option: string): string {
  return `STACKL_AGENT_${option.toUpperCase().replaceAll("-", "_")}`;
}

/** Reads a config file into option values (strings), validating its keys. */
function readConfigFile(file: string): Partial<Record<ValueOption, string>> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new OptionsError(`--config: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new OptionsError(`--config: ${file} is not valid YAML/JSON: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new OptionsError(`--config: ${file} must hold a mapping`);
  const out: Partial<Record<ValueOption, string>> = {};
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    if (!(VALUE_OPTION_NAMES as string[]).includes(key) || key === "config") {
      throw new OptionsError(`--config: unknown key "${key}" in ${file} (keys are the long option names)`);
    }
    const name = key as ValueOption;
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
      out[name] = String(value);
    } else if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
      out[name] = value.join(",");
    } else if (name === "labels" && value !== null && typeof value === "object") {
      out[name] = Object.entries(value as Record<string, unknown>)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(",");
    } else {
      throw new OptionsError(`--config: "${key}" in ${file} has an unsupported value`);
    }
  }
  return out;
}

/** Parses argv (without node and script) and the environment. Throws OptionsError naming the bad option. */
export function parseCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliResult {
  let parsed: ReturnType<typeof parseArgs<{ options: ParseOptions }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: PARSE_OPTIONS, strict: true, allowPositionals: false });
  } catch (err) {
    throw new OptionsError(`${(err as Error).message} (see --help)`);
  }
  const flags = parsed.values;
  if (flags.help) return { kind: "help", text: helpText() };
  if (flags.version) return { kind: "version", text: `stackl-agent ${AGENT_VERSION}\n` };

  const configFile = flags.config ?? env.STACKL_AGENT_CONFIG;
  const fromFile = configFile ? readConfigFile(expandHome(configFile)) : {};
  /** The value of an option and where it came from (for error messages). */
  const get = (name: ValueOption): { value: string; source: string } | undefined => {
    const flag = flags[name];
    if (typeof flag === "string") return { value: flag, source: `--${name}` };
    const e = env[envName(name)];
    if (e !== undefined && e !== "") return { value: e, source: envName(name) };
    const f = fromFile[name];
    if (f !== undefined) return { value: f, source: `"${name}" in ${configFile}` };
    return undefined;
  };

  const server = get("server");
  if (!server) {
    throw new OptionsError("--server is required (or STACKL_AGENT_SERVER, or server: in the --config file)");
  }
  let url: URL;
  try {
    url = new URL(server.value);
  } catch {
    throw new OptionsError(`${server.source} must be a URL like http://host:7443, got "${server.value}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OptionsError(`${server.source} must be an http:// or https:// URL, got "${server.value}"`);
  }

  const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
  const name = get("name") ?? { value: hostname(), source: "the host name" };
  if (!namePattern.test(name.value)) {
    throw new OptionsError(
      `${name.source} must be 1-253 letters, digits, . _ - (starting alphanumeric), got "${name.value}"`,
    );
  }
  const pool = get("pool") ?? { value: "default", source: "default" };
  if (!namePattern.test(pool.value)) {
    throw new OptionsError(
      `${pool.source} must be 1-253 letters, digits, . _ - (starting alphanumeric), got "${pool.value}"`,
    );
  }
  const labelsOpt = get("labels");
  const labels = labelsOpt ? parseLabels(labelsOpt.value, labelsOpt.source) : {};

  const capacityOpt = get("capacity");
  let capacity = 4;
  if (capacityOpt) {
    capacity = Number(capacityOpt.value);
    if (!/^\d+$/.test(capacityOpt.value.trim()) || capacity < 1 || capacity > 1024) {
      throw new OptionsError(`${capacityOpt.source} must be an integer from 1 to 1024, got "${capacityOpt.value}"`);
    }
  }

  const token = get("token");
  const tokenFile = get("token-file");
  if (token && tokenFile) throw new OptionsError(`give either ${token.source} or ${tokenFile.source}, not both`);
  let enrollmentToken = token?.value.trim();
  if (tokenFile) {
    try {
      enrollmentToken = readFileSync(expandHome(tokenFile.value), "utf8").trim();
    } catch (err) {
      throw new OptionsError(
        `${tokenFile.source}: cannot read ${tokenFile.value}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
    if (enrollmentToken === "") throw new OptionsError(`${tokenFile.source}: ${tokenFile.value} is empty`);
  }

  const stateDir = expandHome(get("state-dir")?.value ?? "~/.stackl-agent");
  const workDirOpt = get("work-dir");
  const workDir = workDirOpt ? expandHome(workDirOpt.value) : path.join(stateDir, "work");

  const handlersOpt = get("handlers");
  let handlers: HandlerName[] | undefined;
  if (handlersOpt) {
    const list = handlersOpt.value
      .split(",")
      .map((h) => h.trim())
      .filter((h) => h !== "");
    if (list.length === 0) throw new OptionsError(`${handlersOpt.source} names no handler`);
    for (const h of list) {
      if (!isHandlerName(h)) {
        throw new OptionsError(`${handlersOpt.source}: unknown handler "${h}" (known: ${HANDLER_NAMES.join(", ")})`);
      }
    }
    handlers = [...new Set(list as HandlerName[])];
  }

  const drainOpt = get("drain-timeout");
  const drainTimeoutMs = drainOpt ? parseDuration(drainOpt.value, drainOpt.source) : DEFAULT_DRAIN_TIMEOUT_MS;

  const levelOpt = get("log-level");
  const logLevel = (levelOpt?.value ?? "info") as LogLevel;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new OptionsError(`${levelOpt?.source}: must be one of ${LOG_LEVELS.join(", ")}, got "${levelOpt?.value}"`);
  }

  const caFile = get("ca-file");
  if (caFile && url.protocol !== "https:") {
    throw new OptionsError(`${caFile.source} only applies to an https:// server`);
  }

  return {
    kind: "run",
    config: {
      server: url.origin + (url.pathname === "/" ? "" : url.pathname.replace(/\/$/, "")),
      name: name.value,
      pool: pool.value,
      labels,
      capacity,
      enrollmentToken: enrollmentToken || undefined,
      stateDir,
      workDir,
      handlers,
      binaries: {
        tofu: get("tofu-bin")?.value,
        terraform: get("terraform-bin")?.value,
        ansiblePlaybook: get("ansible-playbook-bin")?.value,
      },
      drainTimeoutMs,
      caFile: caFile ? expandHome(caFile.value) : undefined,
      logLevel,
    },
  };
}

type ParseOptions = Record<ValueOption, { type: "string" }> & {
  help: { type: "boolean"; short: "h" };
  version: { type: "boolean"; short: "V" };
};

const PARSE_OPTIONS: ParseOptions = {
  ...(Object.fromEntries(VALUE_OPTION_NAMES.map((n) => [n, { type: "string" }])) as Record<
    ValueOption,
    { type: "string" }
  >),
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
};
