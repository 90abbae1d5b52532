// `stackl dev`'s local agent: the real agent code in process (agent/src), enrolled without a human, name and pool
// `common`; it keeps its credential across restarts of the same data directory and runs jobs through RunJob.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AgentService, AgentState } from "../../../gen/stackl/v1/agents_pb.js";
import { JobService, JobState } from "../../../gen/stackl/v1/jobs_pb.js";
import { startRuntimeServer } from "../../support/runtime-server.js";
import { eventually } from "../../support/stackl-process.js";

const dataDir = mkdtempSync(path.join(tmpdir(), "stackl-dev-agent-"));

after(() => rmSync(dataDir, { recursive: true, force: true }));

async function startDev() {
  const server = await startRuntimeServer({ STACKL_DATA_DIR: dataDir }, "dev");
  const transport = createGrpcTransport({ baseUrl: server.url });
  const agents = createClient(AgentService, transport);
  const jobs = createClient(JobService, transport);
  await eventually("the local agent is connected", async () => {
    const { agent } = await agents.getAgent({ name: "common" });
    return agent?.state === AgentState.CONNECTED;
  });
  return { server, agents, jobs };
}

describe("stackl dev local agent", { timeout: 120_000 }, () => {
  test("runs a shell job on `common`, and keeps its identity across a restart", async () => {
    const first = await startDev();
    try {
      const { agent } = await first.agents.getAgent({ name: "common" });
      assert.equal(agent?.pool, "common");
      assert.ok(agent?.handlers.includes("shell") && agent.handlers.includes("mock"));
      const { job } = await first.jobs.runJob({
        target: "common",
        spec: {
          invocation: {
            tool: "shell",
            command: ["sh", "-c", "echo local; echo '{\"ok\":true}' > $STACKL_OUTPUTS_FILE"],
          },
        },
        wait: { seconds: 30n },
      });
      assert.equal(job?.state, JobState.SUCCEEDED, JSON.stringify(job?.error));
      assert.deepEqual(job?.outputs, { ok: true });
    } finally {
      await first.server.close();
    }
    const credential = readFileSync(path.join(dataDir, "agent", "credential.json"), "utf8");
    const second = await startDev();
    try {
      assert.equal(
        readFileSync(path.join(dataDir, "agent", "credential.json"), "utf8"),
        credential,
        "the stored credential was accepted (no second enrollment)",
      );
      const { job } = await second.jobs.runJob({
        target: "common",
        spec: { invocation: { tool: "mock", mock: { outputs: { n: 1 } } } },
        wait: { seconds: 30n },
      });
      assert.equal(job?.state, JobState.SUCCEEDED, JSON.stringify(job?.error));
      assert.deepEqual(job?.outputs, { n: 1 });
    } finally {
      await second.server.close();
    }
  });
});
