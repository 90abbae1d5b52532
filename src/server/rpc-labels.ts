import type { DescMethod } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";

/** The `rpc` log key and metric label: `stackl.v1.DocumentService/ApplyDocuments`. */
export function rpcName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/** The `code` log key and metric label: `ok`, or the Connect code name (`not_found`, `resource_exhausted`, …). */
export function codeName(err: unknown): string {
  return err === undefined ? "ok" : codeToString(ConnectError.from(err).code);
}
