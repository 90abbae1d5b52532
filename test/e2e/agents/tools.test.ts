// The real tools through the whole path: RunJob on `stackl serve` → PostgreSQL → replica → a real `stackl-agent`
// with the tofu and ansible handlers → outputs back on the job. OpenTofu uses only built-in resources
// (terraform_data, outputs; TF_CLI_CONFIG_FILE=/dev/null, no provider downloads); Ansible runs against localhost.
// Both apply (create) and destroy (delete).
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type JobSpecSchema, JobState } from "../../../gen/stackl/v1/jobs_pb.js";
import { toolPath } from "../../support/tools.js";
import { Cluster, type Replica } from "./cluster.js";

const SECRET = "tool-secret-e2e-Qw3rty9";
let c: Cluster;
let a: Replica;
let scratch: string;

before(async () => {
  c = await Cluster.start();
  a = await c.serve("tools-a");
  scratch = await mkdtemp(path.join(tmpdir(), "stackl-e2e-tools-"));
  c.agent(a, {
    name: "tools-1",
    pool: "tools",
    token: await c.token(a, "tools"),
    handlers: "tofu,ansible,shell",
    extraArgs: ["--tofu-bin", toolPath("tofu"), "--ansible-playbook-bin", toolPath("ansible-playbook")],
    env: { TF_CLI_CONFIG_FILE: "/dev/null", STACKL_E2E_TOOL_SECRET: SECRET },
  });
  await c.connected("tools-1");
});

after(async () => {
  await c?.close();
});

async function run(spec: MessageInitShape<typeof JobSpecSchema>) {
  const { job } = await a.jobs.runJob({ target: "tools", spec, wait: durationFromMs(120_000) });
  assert.ok(job);
  const logs = (await c.storedLogs(job.id)).map((l) => l.text).join("");
  return { job, logs };
}

describe("tool handlers through RunJob", { timeout: 400_000 }, () => {
  test("OpenTofu: apply on create, destroy on delete, outputs mapped", async () => {
    const config = path.join(scratch, "tofu");
    mkdirSync(config);
    writeFileSync(
      path.join(config, "main.tf"),
      `variable "name" {
  type = string
}
variable "password" {
  type      = string
  sensitive = true
  default   = ""
}
resource "terraform_data" "server" {
  input = { name = var.name }
}
output "id" {
  value = terraform_data.server.id
}
output "info" {
  value = { name = var.name, tags = ["a", "b"] }
}
output "password_length" {
  value = nonsensitive(length(var.password))
}
`,
    );
    const spec = {
      invocation: { tool: "tofu", workingDir: config },
      parameters: { name: "web-1" },
      secrets: { password: "env:STACKL_E2E_TOOL_SECRET" },
      outputsSpec: { server_id: "id", server_name: "info.name", tag: "info.tags.1", pw_len: "password_length" },
      stackInstance: "si-e2e",
      service: "web",
      functionalRequirement: "server",
      infrastructureTargets: ["prod.eu.z1"],
    };
    const created = await run({ ...spec, action: "create" });
    assert.equal(created.job.state, JobState.SUCCEEDED, `${JSON.stringify(created.job.error)}\n${created.logs}`);
    const outputs = created.job.outputs as Record<string, unknown>;
    assert.match(String(outputs.server_id), /^[0-9a-f-]{36}$/);
    assert.deepEqual({ ...outputs, server_id: "x" }, { server_id: "x", server_name: "web-1", tag: "b", pw_len: 23 });
    assert.match(created.logs, /Apply complete! Resources: 1 added/);
    const deleted = await run({ ...spec, action: "delete" });
    assert.equal(deleted.job.state, JobState.SUCCEEDED, `${JSON.stringify(deleted.job.error)}\n${deleted.logs}`);
    assert.match(deleted.logs, /Destroy complete! Resources: 1 destroyed/);
    for (const logs of [created.logs, deleted.logs]) assert.ok(!logs.includes(SECRET), "secret in the tofu log");
    const listed = await a.jobs.listJobs({ stackInstance: "si-e2e" });
    assert.equal(listed.jobs.length, 2);
  });

  test("Ansible against localhost: present on create, absent on delete; set_stats come back as outputs", async () => {
    const dir = path.join(scratch, "ansible");
    mkdirSync(dir);
    const marker = path.join(scratch, "ansible-marker");
    writeFileSync(
      path.join(dir, "site.yml"),
      `- hosts: all
  gather_facts: false
  tasks:
    - name: the marker follows the state
      ansible.builtin.file:
        path: "${marker}"
        state: "{{ 'touch' if state == 'present' else 'absent' }}"
    - name: the secret is usable but masked
      ansible.builtin.debug:
        msg: "the password is {{ db_password }}"
    - name: outputs
      ansible.builtin.set_stats:
        data:
          ip: "10.0.0.{{ n }}"
          action: "{{ stackl_action }}"
`,
    );
    const spec = {
      invocation: { tool: "ansible", workingDir: dir, playbookPath: "site.yml" },
      parameters: { n: 7 },
      secrets: { db_password: "env:STACKL_E2E_TOOL_SECRET" },
      outputsSpec: { address: "ip", action: "action" },
      service: "web",
    };
    const created = await run({ ...spec, action: "create" });
    assert.equal(created.job.state, JobState.SUCCEEDED, `${JSON.stringify(created.job.error)}\n${created.logs}`);
    assert.deepEqual(created.job.outputs, { address: "10.0.0.7", action: "create" });
    assert.ok(existsSync(marker), "the playbook ran on localhost");
    assert.match(created.logs, /the password is \*\*\*/);
    const deleted = await run({ ...spec, action: "delete" });
    assert.equal(deleted.job.state, JobState.SUCCEEDED, `${JSON.stringify(deleted.job.error)}\n${deleted.logs}`);
    assert.deepEqual(deleted.job.outputs, { address: "10.0.0.7", action: "delete" });
    assert.equal(existsSync(marker), false, "state absent removed it");
    for (const logs of [created.logs, deleted.logs]) assert.ok(!logs.includes(SECRET), "secret in the ansible log");
  });
});
