import { createContextKey, type HandlerContext } from "@connectrpc/connect";

/** The authenticated caller of an RPC, set by the authentication interceptor. */
export const principalKey = createContextKey<string>("anonymous", { description: "authenticated principal" });

export function principalOf(ctx: HandlerContext): string {
  return ctx.values.get(principalKey);
}
