// The agent and job commands of the real `stackl` CLI against a real `stackl dev` (whose local agent `common` runs
// the jobs): run (live output, exit code), jobs, job, logs, cancel job, agents, agent, token create.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eventually } from "../../support/stackl-process.js";
import { cli, type DevServer, startDev } from "../cli/cli-harness.js";

let dev: DevServer;

before(async () => {
  dev = await startDev();
  await eventually("the local agent is connected", async () => {
    const r = await cli(dev, ["agents", "-o", "json"]);
    return r.code === 0 && r.stdout.includes('"AGENT_STATE_CONNECTED"');
  });
});

after(async () => {
  await dev?.stop();
});

describe("stackl agent and job commands", { timeout: 240_000 }, () => {
  test("run prints the command's output live and exits with its exit code; jobs/job/logs show it", async () => {
    const ok = await cli(dev, ["run", "--target", "common", "-e", "WHO=world", "--", "sh", "-c", 'echo "hello $WHO"']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "hello world\n");
    assert.match(ok.stderr, /\[stackl-agent\] succeeded/);
    const failed = await cli(dev, [
      "run",
      "-q",
      "--target",
      "common",
      "--",
      "sh",
      "-c",
      "echo out; echo err >&2; exit 3",
    ]);
    assert.equal(failed.code, 3);
    assert.equal(failed.stdout, "out\n");
    assert.match(failed.stderr, /^err\n/m);
    assert.match(failed.stderr, /job job_\w+ failed: job_failed: shell exited with code 3/);
    const id = /job (job_\w+) failed/.exec(failed.stderr)?.[1] ?? "";
    const list = await cli(dev, ["jobs", "--state", "failed"]);
    assert.match(list.stdout, new RegExp(`${id}\\s+common\\s+common\\s+shell\\s+failed\\s+1`));
    const show = await cli(dev, ["job", id]);
    assert.match(show.stdout, /State:\s+failed/);
    assert.match(show.stdout, /Exit code:\s+3/);
    const logs = await cli(dev, ["logs", id]);
    assert.equal(logs.stdout, "out\n");
    assert.match(logs.stderr, /err\n/);
    const json = await cli(dev, ["logs", id, "--json"]);
    assert.ok(
      json.stdout
        .trim()
        .split("\n")
        .every((l) => typeof JSON.parse(l).seq === "number"),
    );
  });

  test("cancel job stops a running job; the agent commands show the local agent; token create mints a token", async () => {
    const started = await cli(dev, ["run", "-d", "--target", "common", "--", "sleep", "300"]);
    assert.equal(started.code, 0, started.stderr);
    const id = started.stdout.trim();
    await eventually("running", async () => (await cli(dev, ["job", id])).stdout.includes("running"));
    const cancelled = await cli(dev, ["cancel", "job", id, "--grace", "1s", "--wait", "30s"]);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match(cancelled.stdout, new RegExp(`job ${id} cancelled`));
    const agents = await cli(dev, ["agents"]);
    assert.match(agents.stdout, /^NAME\s+POOL\s+STATE/);
    assert.match(agents.stdout, /common\s+common\s+connected/);
    const agent = await cli(dev, ["agent", "common"]);
    assert.match(agent.stdout, /Handlers:\s+.*shell/);
    const token = await cli(dev, ["token", "create", "--pool", "linux", "--ttl", "10m"]);
    assert.equal(token.code, 0, token.stderr);
    assert.match(token.stdout, /^enr_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}\n$/);
    assert.match(token.stderr, /single use, expires/);
    const tooLong = await cli(dev, ["token", "create", "--ttl", "2h"]);
    assert.equal(tooLong.code, 1);
    assert.match(tooLong.stderr, /ttl: must be between 1s and 1h/);
  });
});
