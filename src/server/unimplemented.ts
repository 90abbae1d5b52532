import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Which issue implements each not-yet-built service. RPCs without an implementation answer UNIMPLEMENTED with a
 * message naming it — honestly, never a fake success.
 */
export const IMPLEMENTED_BY: Readonly<Record<string, string>> = {
  "stackl.v1.DocumentService": "issue #3 (document datastore)",
  "stackl.v1.TaskService": "issue #4 (task system)",
  "stackl.v1.AgentService": "issue #5 (agents)",
  "stackl.v1.JobService": "issue #5 (agents and jobs)",
  "stackl.v1.StackInstanceService": "issue #6 (stack orchestration)",
  "stackl.v1.PolicyService": "issue #6 (policies and placement)",
};

/** The UNIMPLEMENTED error for `method`. */
export function unimplementedError(method: DescMethod): ConnectError {
  const owner = IMPLEMENTED_BY[method.parent.typeName];
  const rpc = `${method.parent.typeName}.${method.name}`;
  const message =
    owner === undefined ? `${rpc} is not implemented` : `${rpc} is not implemented yet; ${owner} implements it`;
  return new ConnectError(message, Code.Unimplemented);
}

/**
 * A handler for `method` that always fails with UNIMPLEMENTED. One plain function serves every method kind: the
 * router turns a synchronous throw into the error response for unary and streaming calls alike.
 */
export function unimplementedMethod(method: DescMethod): () => never {
  return function unimplemented(): never {
    throw unimplementedError(method);
  };
}

/** `impl` completed with UNIMPLEMENTED handlers for every method it leaves out (keyed by `localName`). */
export function withUnimplemented(service: DescService, impl: object): Record<string, unknown> {
  const full: Record<string, unknown> = {};
  for (const method of service.methods) {
    const fn = (impl as Record<string, unknown>)[method.localName];
    full[method.localName] = typeof fn === "function" ? fn.bind(impl) : unimplementedMethod(method);
  }
  return full;
}
