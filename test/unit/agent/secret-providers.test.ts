import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import {
  defaultSecretProviders,
  parseSecretReference,
  resolveSecrets,
  type SecretProvider,
  SecretResolutionError,
} from "../../../agent/src/secret-providers.js";

const signal = new AbortController().signal;

describe("secret providers", () => {
  test("env: reads the agent environment", async () => {
    const providers = defaultSecretProviders({ DB_PASSWORD: "s3cr3t", EMPTY: "" });
    const got = await resolveSecrets({ db: "env:DB_PASSWORD", empty: "env:EMPTY" }, providers, signal);
    assert.deepEqual(Object.fromEntries(got), { db: "s3cr3t", empty: "" });
  });

  test("env: an unset variable fails naming the secret and variable", async () => {
    const providers = defaultSecretProviders({});
    await assert.rejects(resolveSecrets({ db: "env:NOPE" }, providers, signal), (err: unknown) => {
      assert.ok(err instanceof SecretResolutionError);
      assert.equal(err.secret, "db");
      assert.match(err.message, /secret "db" \(env:NOPE\): environment variable NOPE is not set/);
      return true;
    });
  });

  test("file: reads the file without one trailing newline", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "stackl-secret-"));
    const file = path.join(dir, "token");
    writeFileSync(file, "file-secret-value\n");
    const got = await resolveSecrets({ token: `file:${file}` }, defaultSecretProviders({}), signal);
    assert.equal(got.get("token"), "file-secret-value");
    await assert.rejects(
      resolveSecrets({ token: `file:${dir}/missing` }, defaultSecretProviders({}), signal),
      /secret "token" \(file:.*missing\): cannot read .*missing \(ENOENT\)/,
    );
  });

  test("unknown provider and malformed references name the secret, never a value", async () => {
    await assert.rejects(
      resolveSecrets({ api: "vault:kv/app#key" }, defaultSecretProviders({}), signal),
      /secret "api" \(vault:kv\/app#key\): no secret provider "vault" \(known: env, file\)/,
    );
    await assert.rejects(
      resolveSecrets({ api: "just-a-value" }, defaultSecretProviders({}), signal),
      /secret "api" \(just-a-value\): not a reference/,
    );
  });

  test("providers are pluggable and their errors never carry the value", async () => {
    const providers = defaultSecretProviders({});
    const vault: SecretProvider = async (locator) => {
      if (locator === "kv/app") return "from-vault";
      throw new Error(`no such path ${locator}`);
    };
    providers.set("vault", vault);
    const got = await resolveSecrets({ api: "vault:kv/app" }, providers, signal);
    assert.equal(got.get("api"), "from-vault");
    await assert.rejects(resolveSecrets({ api: "vault:kv/other" }, providers, signal), /no such path kv\/other/);
  });

  test("parseSecretReference", () => {
    assert.deepEqual(parseSecretReference("env:X"), { scheme: "env", locator: "X" });
    assert.deepEqual(parseSecretReference("file:/a:b"), { scheme: "file", locator: "/a:b" });
    assert.equal(parseSecretReference("nope"), undefined);
  });
});
