import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { parseByteSize } from "../../../src/config/byte-size.js";
import { loadClientConfig } from "../../../src/config/client-config.js";
import { describeConfig, loadConfig, redactUrl } from "../../../src/config/config.js";
import { ConfigError } from "../../../src/config/config-error.js";
import { formatDuration, parseDuration } from "../../../src/config/duration.js";

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail("expected a ConfigError");
}

describe("loadConfig", () => {
  it("has the documented defaults", () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.host, "127.0.0.1");
    assert.equal(c.port, 7443);
    assert.equal(c.tlsCertFile, undefined);
    assert.equal(c.logLevel, "info");
    assert.equal(c.databaseUrl, undefined);
    assert.equal(c.dataDir, path.resolve("./.stackl/data"));
    assert.equal(c.natsUrl, undefined);
    assert.equal(c.workerConcurrency, 8);
    assert.equal(c.maxMessageBytes, 4 * 1024 * 1024);
    assert.equal(c.maxDeadlineMs, 5 * 60_000);
    assert.equal(c.shutdownGraceMs, 10_000);
    assert.ok(c.replicaName.length > 0);
    assert.ok(Object.isFrozen(c));
  });

  it("reads STACKL_* variables; empty counts as unset; flags win over the environment", () => {
    const env = {
      STACKL_PORT: "9000",
      STACKL_HOST: "0.0.0.0",
      STACKL_LOG_LEVEL: "debug",
      STACKL_DATABASE_URL: "postgres://u:p@db:5432/stackl",
      STACKL_NATS_URL: "nats://a:4222, nats://b:4222",
      STACKL_MAX_MESSAGE_BYTES: "8MiB",
      STACKL_MAX_DEADLINE: "1h30m",
      STACKL_SHUTDOWN_GRACE: "2500ms",
      STACKL_WORKER_CONCURRENCY: "",
      STACKL_REPLICA_NAME: "replica-a",
    };
    const c = loadConfig({ env, flags: { port: "9001", logLevel: undefined } });
    assert.equal(c.port, 9001);
    assert.equal(c.host, "0.0.0.0");
    assert.equal(c.logLevel, "debug");
    assert.equal(c.databaseUrl, "postgres://u:p@db:5432/stackl");
    assert.equal(c.natsUrl, "nats://a:4222,nats://b:4222");
    assert.equal(c.maxMessageBytes, 8 * 1024 * 1024);
    assert.equal(c.maxDeadlineMs, 90 * 60_000);
    assert.equal(c.shutdownGraceMs, 2_500);
    assert.equal(c.workerConcurrency, 8);
    assert.equal(c.replicaName, "replica-a");
  });

  it("names the variable and the value in errors", () => {
    assert.equal(
      configError(() => loadConfig({ env: { STACKL_PORT: "abc" } })).message,
      'STACKL_PORT: expected an integer 0-65535, got "abc"',
    );
    assert.equal(
      configError(() => loadConfig({ env: {}, flags: { port: "-1" } })).message,
      '--port (STACKL_PORT): expected an integer 0-65535, got "-1"',
    );
    const several = configError(() =>
      loadConfig({ env: { STACKL_LOG_LEVEL: "loud", STACKL_WORKER_CONCURRENCY: "0", STACKL_MAX_DEADLINE: "10" } }),
    );
    assert.deepEqual([...several.variables].sort(), [
      "STACKL_LOG_LEVEL",
      "STACKL_MAX_DEADLINE",
      "STACKL_WORKER_CONCURRENCY",
    ]);
    assert.match(several.message, /STACKL_LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent/);
  });

  it("checks URLs and the TLS pair, and never echoes credentials", () => {
    const db = configError(() => loadConfig({ env: { STACKL_DATABASE_URL: "mysql://root:s3cret@db/x" } }));
    assert.match(db.message, /^STACKL_DATABASE_URL: expected a postgres:\/\/ URL/);
    assert.doesNotMatch(db.message, /s3cret/);
    assert.match(configError(() => loadConfig({ env: { STACKL_NATS_URL: "http://x" } })).message, /STACKL_NATS_URL/);
    assert.match(
      configError(() => loadConfig({ env: { STACKL_TLS_KEY: "k.pem" } })).message,
      /^STACKL_TLS_CERT: expected both STACKL_TLS_CERT and STACKL_TLS_KEY/,
    );
    const c = loadConfig({ env: { STACKL_TLS_KEY: "k.pem", STACKL_TLS_CERT: "c.pem" } });
    assert.equal(c.tlsCertFile, "c.pem");
    const described = describeConfig(loadConfig({ env: { STACKL_DATABASE_URL: "postgres://u:pw@h/db" } }));
    assert.equal(described.database, "postgres://u:***@h/db");
  });
});

describe("config value parsers", () => {
  it("durations", () => {
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("10s"), 10_000);
    assert.equal(parseDuration("1h30m"), 5_400_000);
    assert.equal(parseDuration("1.5s"), 1_500);
    assert.equal(parseDuration("10"), undefined);
    assert.equal(parseDuration("s"), undefined);
    assert.equal(formatDuration(5_400_000), "1h30m");
    assert.equal(formatDuration(250), "250ms");
  });

  it("byte sizes", () => {
    assert.equal(parseByteSize("4MiB"), 4 * 1024 * 1024);
    assert.equal(parseByteSize("512KiB"), 512 * 1024);
    assert.equal(parseByteSize("4194304"), 4 * 1024 * 1024);
    assert.equal(parseByteSize("4MB"), undefined);
    assert.equal(parseByteSize("-1"), undefined);
  });

  it("redactUrl hides passwords and tokens", () => {
    assert.equal(redactUrl("postgres://user:pw@h:5432/db"), "postgres://user:***@h:5432/db");
    assert.equal(redactUrl("nats://tok@a:4222,nats://u:p@b:4222"), "nats://***@a:4222,nats://u:***@b:4222");
    assert.equal(redactUrl("nats://a:4222"), "nats://a:4222");
  });
});

describe("loadClientConfig", () => {
  it("defaults to the local server; --server wins over STACKL_SERVER; bad URLs name the variable", () => {
    assert.equal(loadClientConfig({ env: {} }).server, "http://127.0.0.1:7443");
    assert.equal(loadClientConfig({ env: { STACKL_SERVER: "https://s:1/" } }).server, "https://s:1");
    assert.equal(
      loadClientConfig({ env: { STACKL_SERVER: "https://s:1" }, server: "http://t:2" }).server,
      "http://t:2",
    );
    assert.match(configError(() => loadClientConfig({ env: { STACKL_SERVER: "ftp://x" } })).message, /^STACKL_SERVER:/);
  });
});
