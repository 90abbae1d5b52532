// The tofu and ansible handlers running the real tools (pinned, installed by scripts/tools.sh) through a real
// session against the fake server.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { JobOutcome } from "../../../gen/stackl/v1/agents_pb.js";
import { FakeAgentServer } from "../../support/fake-agent-server.js";
import { toolPath } from "../../support/tools.js";
import { startAgent, type TestAgent } from "./harness.js";

let server: FakeAgentServer;
let agent: TestAgent;
let scratch: string;
const savedTfConfig = process.env.TF_CLI_CONFIG_FILE;

before(async () => {
  // No CLI config, no network: terraform_data and outputs are built in.
  process.env.TF_CLI_CONFIG_FILE = "/dev/null";
  process.env.STACKL_TEST_TOOL_SECRET = "tool-secret-Zq8v7w6x";
  server = await FakeAgentServer.start();
  agent = startAgent(server, {
    handlers: ["tofu", "ansible"],
    binaries: { tofu: toolPath("tofu"), ansiblePlaybook: toolPath("ansible-playbook") },
  });
  scratch = mkdtempSync(path.join(tmpdir(), "stackl-tools-"));
  await server.next("hello");
});

after(async () => {
  await agent.close();
  await server.close();
  rmSync(scratch, { recursive: true, force: true });
  if (savedTfConfig === undefined) delete process.env.TF_CLI_CONFIG_FILE;
  else process.env.TF_CLI_CONFIG_FILE = savedTfConfig;
  delete process.env.STACKL_TEST_TOOL_SECRET;
});

const TOFU_CONFIG = `
variable "name" {
  type = string
}
variable size {
  type    = number
  default = 1
}
variable "password" {
  type      = string
  sensitive = true
  default   = ""
}
resource "terraform_data" "server" {
  input = { name = var.name, size = var.size }
}
output "id" {
  value = terraform_data.server.id
}
output "info" {
  value = { name = var.name, nested = { size = var.size, tags = ["a", "b"] } }
}
output "password_length" {
  value = nonsensitive(length(var.password))
}
`;

describe("tofu handler", () => {
  test("apply on create, destroy on delete, state kept between them, outputs mapped", {
    timeout: 120_000,
  }, async () => {
    const config = path.join(scratch, "tofu-config");
    mkdirSync(config);
    writeFileSync(path.join(config, "main.tf"), TOFU_CONFIG);
    const spec = {
      invocation: { tool: "tofu", workingDir: config },
      parameters: { name: "web-1", size: 3, undeclared_param: "ignored", other: { deep: true } },
      secrets: { password: "env:STACKL_TEST_TOOL_SECRET" },
      outputsSpec: {
        server_id: "id",
        server_name: "info.name",
        size: "info.nested.size",
        tag: "info.nested.tags.1",
        pw_len: "password_length",
      },
      stackInstance: "si-tofu",
      service: "web",
      functionalRequirement: "server",
      infrastructureTargets: ["prod.eu.z1"],
    };
    server.offer("tofu-create", { ...spec, action: "create" });
    const created = await server.result("tofu-create", 100_000);
    assert.equal(created.outcome, JobOutcome.SUCCEEDED, `${created.error}\n${server.logText("tofu-create")}`);
    const outputs = created.outputs as Record<string, unknown>;
    assert.match(String(outputs.server_id), /^[0-9a-f-]{36}$/);
    assert.deepEqual(
      { ...outputs, server_id: "x" },
      { server_id: "x", server_name: "web-1", size: 3, tag: "b", pw_len: 20 },
    );
    const log = server.logText("tofu-create");
    assert.match(log, /tofu init -input=false/);
    assert.match(log, /Apply complete! Resources: 1 added/);
    assert.match(log, /parameters not declared as variables \(not passed\): other, undeclared_param/);
    assert.doesNotMatch(log, /undeclared variable/i);
    const instanceDir = path.join(agent.workDir, "instances", "si-tofu", "web", "server", "prod.eu.z1");
    const state = JSON.parse(readFileSync(path.join(instanceDir, "terraform.tfstate"), "utf8")) as {
      resources: unknown[];
    };
    assert.equal(state.resources.length, 1);

    server.offer("tofu-delete", { ...spec, action: "delete" });
    const deleted = await server.result("tofu-delete", 100_000);
    assert.equal(deleted.outcome, JobOutcome.SUCCEEDED, `${deleted.error}\n${server.logText("tofu-delete")}`);
    assert.match(server.logText("tofu-delete"), /Destroy complete! Resources: 1 destroyed/);
    const after = JSON.parse(readFileSync(path.join(instanceDir, "terraform.tfstate"), "utf8")) as {
      resources: unknown[];
    };
    assert.equal(after.resources.length, 0);
    for (const id of ["tofu-create", "tofu-delete"]) {
      assert.ok(!server.logText(id).includes("tool-secret-Zq8v7w6x"), "secret in the tofu log");
    }
  });

  test("a broken configuration fails with the step that failed", { timeout: 60_000 }, async () => {
    const config = path.join(scratch, "tofu-broken");
    mkdirSync(config);
    writeFileSync(path.join(config, "main.tf"), 'resource "terraform_data" "x" {\n  input = var.missing\n}\n');
    server.offer("tofu-broken", { action: "create", invocation: { tool: "tofu", workingDir: config } });
    const r = await server.result("tofu-broken", 50_000);
    assert.equal(r.outcome, JobOutcome.FAILED);
    assert.match(r.error, /tofu (init|apply) exited with code 1/);
  });
});

describe("ansible handler", () => {
  test("runs a playbook against localhost; set_stats data comes back as outputs", { timeout: 120_000 }, async () => {
    const dir = path.join(scratch, "ansible");
    mkdirSync(dir);
    const marker = path.join(scratch, "ansible-ran");
    writeFileSync(
      path.join(dir, "site.yml"),
      `- hosts: all
  gather_facts: false
  tasks:
    - name: greet
      ansible.builtin.debug:
        msg: "hello {{ greeting }} from {{ inventory_hostname }}, state={{ state }}, action={{ stackl_action }}"
    - name: touch a file (runs a module on the host)
      ansible.builtin.file:
        path: "${marker}"
        state: touch
    - name: secret is usable but masked
      ansible.builtin.debug:
        msg: "the password is {{ db_password }}"
    - name: outputs
      ansible.builtin.set_stats:
        data:
          ip: "10.0.0.{{ n }}"
          nested:
            list: [1, 2, 3]
          password_length: "{{ db_password | length }}"
`,
    );
    server.offer("ansible-1", {
      action: "create",
      invocation: { tool: "ansible", workingDir: dir, playbookPath: "site.yml" },
      parameters: { greeting: "world", n: 7 },
      secrets: { db_password: "env:STACKL_TEST_TOOL_SECRET" },
      outputsSpec: { address: "ip", second: "nested.list.1", pw_len: "password_length" },
      service: "web",
    });
    const r = await server.result("ansible-1", 100_000);
    const log = server.logText("ansible-1");
    assert.equal(r.outcome, JobOutcome.SUCCEEDED, `${r.error}\n${log}`);
    assert.deepEqual(r.outputs, { address: "10.0.0.7", second: 2, pw_len: 20 });
    assert.match(log, /hello world from localhost, state=present, action=create/);
    assert.match(log, /the password is \*\*\*/);
    assert.ok(!log.includes("tool-secret-Zq8v7w6x"), "secret in the ansible log");
    assert.ok(existsSync(marker), "the playbook ran on localhost");
  });

  test("a failing playbook fails the job", { timeout: 60_000 }, async () => {
    const dir = path.join(scratch, "ansible-fail");
    mkdirSync(dir);
    writeFileSync(
      path.join(dir, "fail.yml"),
      "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.fail:\n        msg: on purpose\n",
    );
    server.offer("ansible-fail", {
      action: "create",
      invocation: { tool: "ansible", workingDir: dir, playbookPath: "fail.yml" },
    });
    const r = await server.result("ansible-fail", 50_000);
    assert.equal(r.outcome, JobOutcome.FAILED);
    assert.match(r.error, /ansible-playbook exited with code 2/);
    assert.match(server.logText("ansible-fail"), /on purpose/);
  });
});
