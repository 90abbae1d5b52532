import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import type { Handler, HandlerJob, HandlerResult } from "../handler.js";
import { HandlerError } from "../handler.js";
import { paramsToEnv, secretsToEnv } from "../param-env.js";
import { displayArgv, runProcess } from "../process-group.js";
import { resolveInvocationPath } from "../work-paths.js";
import { jobEnv } from "./job-env.js";
import { readOutputsFile } from "./outputs-file.js";

/**
 * `shell`: runs `invocation.command` as an argv — no shell ever parses it or the parameters.
 *
 * Environment: the agent's (minus STACKL_AGENT_*), then `invocation.env`, then
 * - `STACKL_PARAM_<UPPER_SNAKE>` per parameter (strings as is, other values as JSON),
 * - `STACKL_PARAMS_FILE`: a JSON file with all parameters,
 * - `STACKL_SECRET_<UPPER_SNAKE>` per resolved secret,
 * - `STACKL_OUTPUTS_FILE`: where the command may write a JSON object: the job's outputs,
 * - `STACKL_JOB_ID`, `STACKL_ACTION`, `STACKL_STACK_INSTANCE`, `STACKL_SERVICE`, `STACKL_FUNCTIONAL_REQUIREMENT`,
 *   `STACKL_INFRASTRUCTURE_TARGETS` (comma-separated), `STACKL_HOSTS` (comma-separated).
 * Working directory: `invocation.working_dir` (relative to the agent's work dir), else the job's persistent dir.
 */
export class ShellHandler implements Handler {
  readonly name = "shell";

  async run(job: HandlerJob): Promise<HandlerResult> {
    const invocation = job.spec.invocation;
    const argv = invocation?.command ?? [];
    if (argv.length === 0 || argv[0] === "")
      throw new HandlerError("invocation.command is empty (shell needs an argv)");
    const params: JsonObject = job.spec.parameters ?? {};
    const paramsFile = path.join(job.jobDir, "params.json");
    const outputsFile = path.join(job.jobDir, "outputs.json");
    await writeFile(paramsFile, JSON.stringify(params), { mode: 0o600 });

    const paramEnv = paramsToEnv(params);
    const secretEnv = secretsToEnv(job.secrets);
    for (const name of paramEnv.skipped) {
      await job.log(
        "system",
        `parameter "${name}" has no distinct STACKL_PARAM_ name; it is only in STACKL_PARAMS_FILE\n`,
      );
    }
    for (const name of secretEnv.skipped) {
      await job.log("system", `secret "${name}" has no distinct STACKL_SECRET_ name; it is not passed\n`);
    }
    const env = {
      ...jobEnv(job),
      ...paramEnv.env,
      ...secretEnv.env,
      STACKL_PARAMS_FILE: paramsFile,
      STACKL_OUTPUTS_FILE: outputsFile,
    };
    const cwd = resolveInvocationPath(job.agentWorkDir, invocation?.workingDir ?? "") ?? job.workDir;
    await job.log("system", `$ ${displayArgv(argv)}\n`);
    const exit = await runProcess({ argv, cwd, env, signal: job.signal, log: job.log, onSpawn: job.onProcess });
    if (exit.exitCode !== 0) return { outputs: {}, exitCode: exit.exitCode };
    const outputs = await readOutputsFile(outputsFile);
    return { outputs, exitCode: 0 };
  }
}
