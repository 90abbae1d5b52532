import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { ApiToken } from "../config/auth-config.js";
import type { Logger } from "../observability/logger.js";
import { authorize } from "../policy/contracts.js";
import { LOCAL_PRINCIPAL, type Principal, principalKey } from "./context-keys.js";

/** Callers without a token when tokens are configured: only what agents and probes need (the policy decides). */
const ANONYMOUS: Principal = { name: "anonymous", roles: ["agent"] };

/**
 * Authentication (bearer API tokens, when configured) and authorization: the built-in authz policy (OPA-WASM,
 * `stackl.authz`) is consulted for every RPC; a denial is PERMISSION_DENIED with the policy's reason. Any error in
 * the policy denies. Agents authenticate their stream with their own credential inside AgentService.Connect.
 */
export function authInterceptor(tokens: readonly ApiToken[], logger: Logger): Interceptor {
  const byHash = tokens.map((t) => ({ ...t, hash: Buffer.from(t.sha256, "hex") }));
  return (next) => async (req) => {
    let principal = LOCAL_PRINCIPAL;
    if (byHash.length > 0) {
      const header = req.header.get("authorization") ?? "";
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      if (m === null) {
        principal = ANONYMOUS;
      } else {
        const hash = createHash("sha256")
          .update(m[1] as string)
          .digest();
        const found = byHash.find((t) => timingSafeEqual(t.hash, hash));
        if (found === undefined) throw new ConnectError("invalid API token", Code.Unauthenticated);
        principal = { name: found.name, roles: found.roles };
      }
    }
    const rpc = `${req.service.typeName}/${req.method.name}`;
    let allow = false;
    let reason = "";
    try {
      const d = await authorize({ principal: { name: principal.name, roles: principal.roles }, rpc });
      allow = d.value.allow;
      reason = d.value.reason;
    } catch (err) {
      logger.error({ err, rpc }, "authorization policy failed; denying");
      reason = "authorization policy failed";
    }
    if (!allow) {
      logger.warn({ rpc, principal: principal.name, reason }, "rpc denied by the authorization policy");
      throw new ConnectError(`${principal.name} may not call ${rpc}: ${reason}`, Code.PermissionDenied);
    }
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
