import { access, mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import type { Handler, HandlerJob, HandlerResult } from "../handler.js";
import { HandlerError } from "../handler.js";
import { displayArgv, runProcess } from "../process-group.js";
import { resolveInvocationPath } from "../work-paths.js";
import { jobEnv } from "./job-env.js";
import { readOutputsFile } from "./outputs-file.js";

/** Name of the callback plugin written into every job dir. */
export const OUTPUTS_CALLBACK = "stackl_outputs";

/**
 * An aggregate callback plugin: at the end of the run it writes the `set_stats` data (`stats.custom['_run']`, i.e.
 * `set_stats` with the default `per_host: false`) as JSON to `$STACKL_OUTPUTS_FILE`.
 */
export const OUTPUTS_CALLBACK_SOURCE = `# Written by stackl-agent.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: ${OUTPUTS_CALLBACK}
type: aggregate
short_description: hands set_stats data to stackl-agent
description: writes stats.custom['_run'] as JSON to the file named by STACKL_OUTPUTS_FILE
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "${OUTPUTS_CALLBACK}"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_stats(self, stats):
        data = (getattr(stats, "custom", None) or {}).get("_run", {})
        target = os.environ.get("STACKL_OUTPUTS_FILE")
        if target:
            with open(target, "w") as f:
                json.dump(data, f, default=str)
`;

/**
 * `ansible`: `ansible-playbook` against a generated inventory.
 *
 * - Playbook: `invocation.playbook_path`, relative to `invocation.working_dir` (itself relative to the agent's work
 *   dir); without one, a playbook applying the role `invocation.ansible_role` (default: the functional requirement)
 *   to all hosts is generated, with `become`, `gather_facts` and `serial` from the invocation.
 * - Inventory (YAML/JSON, so host names can never inject variables): `spec.hosts` in groups `stackl` and the
 *   service alias; without hosts, `localhost` with `ansible_connection=local` and the controller's Python.
 * - Variables: `-e @params.json` (the parameters), `-e @stackl.json` (`state`: present, or absent for delete;
 *   `stackl_action`, `stackl_stack_instance`, `stackl_service`, `stackl_functional_requirement`,
 *   `stackl_infrastructure_targets`, `stackl_serial`, `stackl_become`, `stackl_gather_facts`), and the secrets in a
 *   0600 `-e @secrets.json`, deleted right after the run.
 * - For a given playbook, `become` maps to `--become`, `connection` to `--connection`, `gather_facts: false` to
 *   `ANSIBLE_GATHERING=explicit` (plays that say `gather_facts` themselves keep their choice); `serial` is only the
 *   variable `stackl_serial` (a play keyword has no command-line equivalent).
 * - Outputs: `set_stats` data, through the callback plugin above.
 */
export class AnsibleHandler implements Handler {
  readonly name = "ansible";

  constructor(private readonly bin: string) {}

  async run(job: HandlerJob): Promise<HandlerResult> {
    const spec = job.spec;
    const invocation = spec.invocation;
    const baseDir = resolveInvocationPath(job.agentWorkDir, invocation?.workingDir ?? "") ?? job.workDir;
    const gatherFacts = invocation?.gatherFacts ?? true;
    const become = invocation?.become ?? false;
    const serial = invocation?.serial ?? 0;

    let playbook: string;
    if (invocation?.playbookPath) {
      playbook = path.resolve(baseDir, invocation.playbookPath);
      try {
        await access(playbook);
      } catch {
        throw new HandlerError(`playbook ${playbook} does not exist`);
      }
    } else {
      const role = invocation?.ansibleRole || spec.functionalRequirement;
      if (!role) throw new HandlerError("neither invocation.playbook_path nor a role (ansible_role) is given");
      playbook = path.join(job.jobDir, "playbook-role.json");
      const play: JsonObject = { hosts: "all", gather_facts: gatherFacts, become, roles: [{ role }] };
      if (serial > 0) play.serial = serial;
      await writeFile(playbook, JSON.stringify([play], null, 2));
    }

    const inventory = path.join(job.jobDir, "inventory.json");
    await writeFile(inventory, JSON.stringify(buildInventory(spec.hosts, spec.service), null, 2));
    const paramsFile = path.join(job.jobDir, "params.json");
    await writeFile(paramsFile, JSON.stringify(spec.parameters ?? {}), { mode: 0o600 });
    const stacklFile = path.join(job.jobDir, "stackl.json");
    await writeFile(
      stacklFile,
      JSON.stringify({
        state: spec.action === "delete" ? "absent" : "present",
        stackl_action: spec.action,
        stackl_stack_instance: spec.stackInstance,
        stackl_service: spec.service,
        stackl_functional_requirement: spec.functionalRequirement,
        stackl_infrastructure_targets: spec.infrastructureTargets,
        stackl_serial: serial > 0 ? serial : 10,
        stackl_become: become,
        stackl_gather_facts: gatherFacts,
      }),
    );
    const pluginDir = path.join(job.jobDir, "callback_plugins");
    await mkdir(pluginDir, { recursive: true, mode: 0o700 });
    await writeFile(path.join(pluginDir, `${OUTPUTS_CALLBACK}.py`), OUTPUTS_CALLBACK_SOURCE);
    const outputsFile = path.join(job.jobDir, "outputs.json");

    const argv = [this.bin, "-i", inventory, "-e", `@${paramsFile}`, "-e", `@${stacklFile}`];
    const secretsFile = path.join(job.jobDir, "secrets.json");
    if (job.secrets.size > 0) {
      await writeFile(secretsFile, JSON.stringify(Object.fromEntries(job.secrets)), { mode: 0o600 });
      argv.push("-e", `@${secretsFile}`);
    }
    if (invocation?.playbookPath && become) argv.push("--become");
    if (invocation?.connection) argv.push("--connection", invocation.connection);
    argv.push(playbook);

    const base = jobEnv(job);
    const env: Record<string, string | undefined> = {
      ...base,
      ANSIBLE_CALLBACK_PLUGINS: [pluginDir, base.ANSIBLE_CALLBACK_PLUGINS].filter(Boolean).join(":"),
      ANSIBLE_CALLBACKS_ENABLED: [OUTPUTS_CALLBACK, base.ANSIBLE_CALLBACKS_ENABLED].filter(Boolean).join(","),
      ANSIBLE_NOCOLOR: "1",
      ANSIBLE_FORCE_COLOR: "0",
      ANSIBLE_RETRY_FILES_ENABLED: "0",
      PYTHONUNBUFFERED: "1",
      STACKL_OUTPUTS_FILE: outputsFile,
    };
    if (!gatherFacts) env.ANSIBLE_GATHERING = "explicit";

    await job.log("system", `$ ${displayArgv(argv)}\n`);
    try {
      const exit = await runProcess({
        argv,
        cwd: baseDir,
        env,
        signal: job.signal,
        log: job.log,
        onSpawn: job.onProcess,
      });
      if (exit.exitCode !== 0) {
        return { outputs: {}, exitCode: exit.exitCode, error: `ansible-playbook exited with code ${exit.exitCode}` };
      }
    } finally {
      await rm(secretsFile, { force: true });
    }
    return { outputs: await readOutputsFile(outputsFile), exitCode: 0 };
  }
}

/** An Ansible group name from a service alias. */
export function groupName(alias: string): string {
  const g = alias.replace(/[^A-Za-z0-9_]/g, "_");
  return /^[A-Za-z_]/.test(g) ? g : `_${g}`;
}

/** The inventory (YAML-plugin structure, written as JSON). */
export function buildInventory(hosts: readonly string[], service: string): JsonObject {
  if (hosts.length === 0) {
    return {
      all: {
        hosts: {
          localhost: { ansible_connection: "local", ansible_python_interpreter: "{{ ansible_playbook_python }}" },
        },
      },
    };
  }
  const members: JsonObject = {};
  for (const h of hosts) members[h] = {};
  const children: JsonObject = { stackl: { hosts: members } };
  if (service !== "" && groupName(service) !== "stackl") children[groupName(service)] = { hosts: members };
  return { all: { children } };
}
