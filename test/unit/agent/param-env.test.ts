import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { paramsToEnv, secretsToEnv, toUpperSnake } from "../../../agent/src/param-env.js";

describe("parameter environment names", () => {
  test("UPPER_SNAKE from any style", () => {
    assert.equal(toUpperSnake("dbHost"), "DB_HOST");
    assert.equal(toUpperSnake("db-host"), "DB_HOST");
    assert.equal(toUpperSnake("db.host"), "DB_HOST");
    assert.equal(toUpperSnake("DB_HOST"), "DB_HOST");
    assert.equal(toUpperSnake("HTTPPort"), "HTTP_PORT");
    assert.equal(toUpperSnake("ipv4Address"), "IPV4_ADDRESS");
    assert.equal(toUpperSnake("  weird  name!! "), "WEIRD_NAME");
    assert.equal(toUpperSnake("1st"), "1ST");
    assert.equal(toUpperSnake("--"), "");
  });

  test("strings as is, everything else as JSON", () => {
    const { env, skipped } = paramsToEnv({
      name: "web",
      replicas: 3,
      enabled: true,
      nothing: null,
      tags: ["a", "b"],
      nested: { a: 1 },
      evil: "$(touch /tmp/x); `id`",
    });
    assert.deepEqual(env, {
      STACKL_PARAM_NAME: "web",
      STACKL_PARAM_REPLICAS: "3",
      STACKL_PARAM_ENABLED: "true",
      STACKL_PARAM_NOTHING: "null",
      STACKL_PARAM_TAGS: '["a","b"]',
      STACKL_PARAM_NESTED: '{"a":1}',
      STACKL_PARAM_EVIL: "$(touch /tmp/x); `id`",
    });
    assert.deepEqual(skipped, []);
  });

  test("collisions: the first name in sorted order wins; the others are reported", () => {
    const { env, skipped } = paramsToEnv({ "db-host": "a", dbHost: "b", "!!": "c" });
    assert.deepEqual(env, { STACKL_PARAM_DB_HOST: "a" });
    assert.deepEqual(skipped.sort(), ["!!", "dbHost"]);
  });

  test("secrets", () => {
    const { env } = secretsToEnv(new Map([["dbPassword", "x"]]));
    assert.deepEqual(env, { STACKL_SECRET_DB_PASSWORD: "x" });
  });
});
