import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Handler, HandlerJob, HandlerResult } from "../handler.js";
import { HandlerError } from "../handler.js";
import { displayArgv, runProcess } from "../process-group.js";
import { resolveInvocationPath } from "../work-paths.js";
import { jobEnv } from "./job-env.js";

/**
 * `tofu` / `terraform`: one OpenTofu (or Terraform) root module per job.
 *
 * 1. The configuration directory (`invocation.working_dir`) is copied into the job's persistent work dir
 *    (`<work-dir>/instances/<stack_instance>/<service>/<functional_requirement>/<targets>`). Files from the previous
 *    run are replaced; local state (`terraform.tfstate*`, `terraform.tfstate.d/`) and `.terraform/` are kept, so
 *    the delete of an instance destroys what its create applied.
 * 2. Parameters go to a var file passed with `-var-file`, filtered to the variables the root module declares
 *    (`variable "x"` blocks in *.tf / *.tofu, `variable` objects in *.tf.json / *.tofu.json). Tofu only warns about
 *    undeclared values in var files, but the merged parameters of a stack carry many of them; the names that are
 *    skipped are listed in the job log. Secrets go to `TF_VAR_<name>` and are not in the var file.
 * 3. `init -input=false` (with `-backend-config=k=v` for each `invocation.backend_config` entry), then
 *    `apply -auto-approve` for create/update or `destroy -auto-approve` for delete.
 * 4. Outputs: `output -json` (`{name: {value, …}}` → `{name: value}`), captured and never logged (they may be
 *    sensitive); not read after a destroy.
 */
export class TofuHandler implements Handler {
  constructor(
    readonly name: "tofu" | "terraform",
    private readonly bin: string,
  ) {}

  async run(job: HandlerJob): Promise<HandlerResult> {
    const invocation = job.spec.invocation;
    const source = resolveInvocationPath(job.agentWorkDir, invocation?.workingDir ?? "");
    if (source === undefined) throw new HandlerError("invocation.working_dir (the configuration directory) is empty");
    if (!(await isDirectory(source))) throw new HandlerError(`configuration directory ${source} does not exist`);
    const action = job.spec.action;
    if (action !== "create" && action !== "update" && action !== "delete") {
      throw new HandlerError(`unknown action "${action}" (expected create, update or delete)`);
    }
    const dir = job.workDir;
    await syncConfiguration(source, dir);

    const declared = await declaredVariables(dir);
    const params: JsonObject = job.spec.parameters ?? {};
    const vars: JsonObject = {};
    const skipped: string[] = [];
    for (const [k, v] of Object.entries(params)) {
      if (declared.has(k) && !job.secrets.has(k)) vars[k] = v;
      else skipped.push(k);
    }
    if (skipped.length > 0) {
      await job.log("system", `parameters not declared as variables (not passed): ${skipped.sort().join(", ")}\n`);
    }
    const varFile = path.join(job.jobDir, "stackl.tfvars.json");
    await writeFile(varFile, JSON.stringify(vars), { mode: 0o600 });

    const env: Record<string, string | undefined> = { ...jobEnv(job), TF_IN_AUTOMATION: "1", TF_INPUT: "0" };
    for (const [name, value] of job.secrets) {
      if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) env[`TF_VAR_${name}`] = value;
      else await job.log("system", `secret "${name}" is not a valid variable name; not passed\n`);
    }

    const backend = Object.entries(invocation?.backendConfig ?? {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `-backend-config=${k}=${v}`);
    const main =
      action === "delete"
        ? ["destroy", "-auto-approve", "-input=false", "-no-color", `-var-file=${varFile}`]
        : ["apply", "-auto-approve", "-input=false", "-no-color", `-var-file=${varFile}`];
    for (const args of [["init", "-input=false", "-no-color", ...backend], main]) {
      const argv = [this.bin, ...args];
      await job.log("system", `$ ${displayArgv(argv)}\n`);
      const exit = await runProcess({ argv, cwd: dir, env, signal: job.signal, log: job.log, onSpawn: job.onProcess });
      if (exit.exitCode !== 0) {
        return {
          outputs: {},
          exitCode: exit.exitCode,
          error: `${this.name} ${args[0]} exited with code ${exit.exitCode}`,
        };
      }
    }
    if (action === "delete") return { outputs: {}, exitCode: 0 };

    const argv = [this.bin, "output", "-json", "-no-color"];
    await job.log("system", `$ ${displayArgv(argv)}  (output captured, not logged)\n`);
    const exit = await runProcess({
      argv,
      cwd: dir,
      env,
      signal: job.signal,
      log: job.log,
      captureStdout: true,
      onSpawn: job.onProcess,
    });
    if (exit.exitCode !== 0) {
      return { outputs: {}, exitCode: exit.exitCode, error: `${this.name} output exited with code ${exit.exitCode}` };
    }
    return { outputs: parseOutputJson(exit.stdout.toString("utf8")), exitCode: 0 };
  }
}

/** Entries of the persistent directory that survive a new copy of the configuration. */
const KEPT_ENTRIES = new Set([
  ".terraform",
  ".terraform.lock.hcl",
  "terraform.tfstate",
  "terraform.tfstate.backup",
  "terraform.tfstate.d",
]);

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Makes `dir` a copy of `source` while keeping local state and the provider cache. */
export async function syncConfiguration(source: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const entry of await readdir(dir)) {
    if (!KEPT_ENTRIES.has(entry)) await rm(path.join(dir, entry), { recursive: true, force: true });
  }
  const from = path.resolve(source);
  await cp(from, dir, {
    recursive: true,
    force: true,
    filter: (src) => {
      const rel = path.relative(from, src);
      const top = rel.split(path.sep)[0] ?? "";
      return top !== ".terraform" && !top.startsWith("terraform.tfstate");
    },
  });
}

/** Names of the variables the root module in `dir` declares. */
export async function declaredVariables(dir: string): Promise<Set<string>> {
  const names = new Set<string>();
  for (const entry of await readdir(dir)) {
    const file = path.join(dir, entry);
    if (/\.(tf|tofu)$/.test(entry)) {
      const text = await readFile(file, "utf8");
      for (const m of text.matchAll(/^[ \t]*variable[ \t]+"?([A-Za-z_][A-Za-z0-9_-]*)"?[ \t]*\{/gm)) names.add(m[1]!);
    } else if (/\.(tf|tofu)\.json$/.test(entry)) {
      try {
        const doc = JSON.parse(await readFile(file, "utf8")) as { variable?: unknown };
        if (doc.variable && typeof doc.variable === "object") {
          for (const k of Object.keys(doc.variable)) names.add(k);
        }
      } catch {
        // tofu reports the broken file itself
      }
    }
  }
  return names;
}

/** `tofu output -json` → `{name: value}`. */
export function parseOutputJson(text: string): JsonObject {
  if (text.trim() === "") return {};
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new HandlerError(`output -json did not print JSON: ${(err as Error).message}`);
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return {};
  const out: JsonObject = {};
  for (const [name, entry] of Object.entries(doc as Record<string, unknown>)) {
    if (entry !== null && typeof entry === "object" && "value" in entry) {
      out[name] = (entry as { value: JsonValue }).value;
    }
  }
  return out;
}
