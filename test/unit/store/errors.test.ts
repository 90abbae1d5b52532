import assert from "node:assert/strict";
import { test } from "node:test";
import { ErrorCode, StacklError } from "../../../src/errors.js";
import {
  SerializationFailureError,
  StoreQueryError,
  StoreTimeoutError,
  StoreUnavailableError,
  toStoreError,
  UniqueViolationError,
} from "../../../src/store/errors.js";

const withCode = (code: string, message = "x"): Error => Object.assign(new Error(message), { code });

test("connection loss in every shape maps to the retryable StoreUnavailableError", () => {
  for (const err of [
    withCode("57P01", "terminating connection due to administrator command"),
    withCode("57P03", "the database system is starting up"),
    withCode("08006"),
    withCode("08001"),
    withCode("ECONNREFUSED"),
    withCode("ECONNRESET"),
    new Error("Connection terminated unexpectedly"),
    new Error("timeout exceeded when trying to connect"),
    Object.assign(new AggregateError([withCode("ECONNREFUSED"), withCode("ECONNREFUSED")]), { message: "" }),
  ]) {
    const mapped = toStoreError(err, "query");
    assert.ok(mapped instanceof StoreUnavailableError, `${err.message} → ${mapped.constructor.name}`);
    assert.equal(mapped.retryable, true);
    assert.equal(mapped.code, ErrorCode.Unavailable);
    assert.equal(mapped.cause, err);
  }
});

test("SQLSTATEs map to distinguishable classes in the StacklError family", () => {
  const ser = toStoreError(withCode("40001"), "commit");
  assert.ok(ser instanceof SerializationFailureError && ser instanceof StacklError);
  assert.equal(ser.retryable, true);
  assert.ok(toStoreError(withCode("40P01"), "query") instanceof SerializationFailureError);
  const uv = toStoreError(Object.assign(withCode("23505"), { constraint: "t_pkey" }), "query");
  assert.ok(uv instanceof UniqueViolationError);
  assert.equal(uv.constraint, "t_pkey");
  assert.equal(uv.code, ErrorCode.AlreadyExists);
  assert.equal(uv.retryable, false);
  assert.ok(toStoreError(withCode("57014"), "query") instanceof StoreTimeoutError);
  const other = toStoreError(withCode("42P01", 'relation "nope" does not exist'), "query");
  assert.ok(other instanceof StoreQueryError);
  assert.equal(other.sqlState, "42P01");
  assert.equal(toStoreError(other, "again"), other, "StoreErrors pass through");
});
