import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { homedir, hostname, tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { type AgentConfig, parseCli, parseDuration, parseLabels } from "../../../agent/src/cli.js";
import { OptionsError } from "../../../agent/src/options-error.js";

function run(argv: string[], env: NodeJS.ProcessEnv = {}): AgentConfig {
  const r = parseCli(argv, env);
  assert.equal(r.kind, "run");
  return (r as { config: AgentConfig }).config;
}

function fails(argv: string[], pattern: RegExp, env: NodeJS.ProcessEnv = {}): void {
  assert.throws(
    () => parseCli(argv, env),
    (err: unknown) => err instanceof OptionsError && pattern.test(err.message),
  );
}

describe("stackl-agent options", () => {
  test("defaults", () => {
    const c = run(["--server", "http://127.0.0.1:7443"]);
    assert.equal(c.server, "http://127.0.0.1:7443");
    assert.equal(c.name, hostname());
    assert.equal(c.pool, "default");
    assert.equal(c.capacity, 4);
    assert.equal(c.stateDir, path.join(homedir(), ".stackl-agent"));
    assert.equal(c.workDir, path.join(homedir(), ".stackl-agent", "work"));
    assert.equal(c.handlers, undefined);
    assert.equal(c.drainTimeoutMs, 5 * 60_000);
    assert.equal(c.enrollmentToken, undefined);
    assert.deepEqual(c.labels, {});
  });

  test("flags", () => {
    const c = run([
      "--server=https://cp.example:7443/",
      "--name",
      "agent-1",
      "--pool",
      "edge",
      "--labels",
      "zone=eu-1, disk=ssd",
      "--capacity",
      "8",
      "--token",
      "tok",
      "--state-dir",
      "/var/lib/stackl-agent",
      "--handlers",
      "shell,mock",
      "--drain-timeout",
      "90s",
      "--log-level",
      "debug",
    ]);
    assert.equal(c.server, "https://cp.example:7443");
    assert.equal(c.name, "agent-1");
    assert.equal(c.pool, "edge");
    assert.deepEqual(c.labels, { zone: "eu-1", disk: "ssd" });
    assert.equal(c.capacity, 8);
    assert.equal(c.enrollmentToken, "tok");
    assert.equal(c.workDir, "/var/lib/stackl-agent/work");
    assert.deepEqual(c.handlers, ["shell", "mock"]);
    assert.equal(c.drainTimeoutMs, 90_000);
    assert.equal(c.logLevel, "debug");
  });

  test("precedence: flag over environment over config file", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "stackl-agent-cfg-"));
    const yaml = path.join(dir, "agent.yaml");
    writeFileSync(
      yaml,
      "server: http://from-file:1\nname: file-name\npool: file-pool\ncapacity: 2\nlabels:\n  a: b\nhandlers: [shell, tofu]\n",
    );
    const env = { STACKL_AGENT_NAME: "env-name", STACKL_AGENT_TOKEN: "env-token", STACKL_AGENT_CONFIG: yaml };
    const c = run(["--pool", "flag-pool"], env);
    assert.equal(c.server, "http://from-file:1");
    assert.equal(c.name, "env-name");
    assert.equal(c.pool, "flag-pool");
    assert.equal(c.capacity, 2);
    assert.deepEqual(c.labels, { a: "b" });
    assert.deepEqual(c.handlers, ["shell", "tofu"]);
    assert.equal(c.enrollmentToken, "env-token");
    const json = path.join(dir, "agent.json");
    writeFileSync(json, JSON.stringify({ server: "http://json:2", capacity: 3 }));
    assert.equal(run(["--config", json]).capacity, 3);
  });

  test("token from a file", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "stackl-agent-tok-"));
    writeFileSync(path.join(dir, "t"), "file-token\n");
    assert.equal(run(["--server", "http://x:1", "--token-file", path.join(dir, "t")]).enrollmentToken, "file-token");
    fails(
      ["--server", "http://x:1", "--token", "a", "--token-file", path.join(dir, "t")],
      /either --token or --token-file/,
    );
  });

  test("errors name the option", () => {
    fails([], /--server is required/);
    fails(["--server", "ftp://x"], /--server must be an http:\/\/ or https:\/\/ URL/);
    fails(["--server", "nope"], /--server must be a URL/);
    fails(["--server", "http://x:1", "--capacity", "0"], /--capacity must be an integer from 1 to 1024, got "0"/);
    fails(["--server", "http://x:1", "--capacity", "2.5"], /--capacity/);
    fails([], /STACKL_AGENT_CAPACITY must be an integer/, {
      STACKL_AGENT_SERVER: "http://x:1",
      STACKL_AGENT_CAPACITY: "many",
    });
    fails(["--server", "http://x:1", "--handlers", "shell,packer"], /--handlers: unknown handler "packer"/);
    fails(["--server", "http://x:1", "--labels", "novalue"], /--labels: "novalue" is not key=value/);
    fails(["--server", "http://x:1", "--drain-timeout", "soon"], /--drain-timeout must be a duration/);
    fails(["--server", "http://x:1", "--name", "bad name"], /--name must be/);
    fails(["--server", "http://x:1", "--log-level", "loud"], /--log-level: must be one of/);
    fails(["--server", "http://x:1", "--frobnicate"], /Unknown option '--frobnicate'/);
    fails(["--server", "http://x:1", "--ca-file", "/x"], /--ca-file only applies to an https:\/\/ server/);
    const dir = mkdtempSync(path.join(tmpdir(), "stackl-agent-cfg-"));
    writeFileSync(path.join(dir, "bad.yaml"), "server: http://x:1\nsevrer: typo\n");
    fails(["--config", path.join(dir, "bad.yaml")], /--config: unknown key "sevrer"/);
  });

  test("help and version", () => {
    const help = parseCli(["--help"], {});
    assert.equal(help.kind, "help");
    assert.match((help as { text: string }).text, /--server URL/);
    const version = parseCli(["-V"], {});
    assert.equal(version.kind, "version");
    assert.match((version as { text: string }).text, /^stackl-agent \d+\.\d+\.\d+/);
  });

  test("durations and labels", () => {
    assert.equal(parseDuration("500ms", "x"), 500);
    assert.equal(parseDuration("1.5s", "x"), 1500);
    assert.equal(parseDuration("2h", "x"), 7_200_000);
    assert.equal(parseDuration("0", "x"), 0);
    assert.deepEqual(parseLabels("a=1,b=,c=x=y", "x"), { a: "1", b: "", c: "x=y" });
  });
});
