import type { HandlerContext } from "@connectrpc/connect";
import { principalKey } from "../server/context-keys.js";

/** Name of the authenticated caller of an RPC (recorded as author, requester, …). */
export function principalOf(ctx: HandlerContext): string {
  return ctx.values.get(principalKey).name;
}
