import { createHash } from "node:crypto";
import { ConfigError } from "./config-error.js";

/** API callers allowed in, from STACKL_API_TOKENS; none configured = every caller is the local administrator. */
export interface ApiToken {
  name: string;
  roles: string[];
  /** SHA-256 (hex) of the token; the token itself is not kept. */
  sha256: string;
}

const ROLES = new Set(["admin", "viewer", "agent"]);
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$/;

/**
 * `STACKL_API_TOKENS=name:role[+role]:token,…` (e.g. `ci:admin:…,grafana:viewer:…`). Tokens must be at least 32
 * characters. A bad entry stops the process with a message naming the variable (never echoing a token).
 */
export function loadApiTokens(env: Readonly<Record<string, string | undefined>> = process.env): ApiToken[] {
  const raw = env.STACKL_API_TOKENS?.trim();
  if (!raw) return [];
  return raw.split(",").map((entry, i) => {
    const [name = "", roles = "", token = ""] = entry.trim().split(":");
    const fail = (why: string) =>
      new ConfigError(`STACKL_API_TOKENS: entry ${i + 1}: ${why} (expected name:role[+role]:token)`, [
        "STACKL_API_TOKENS",
      ]);
    if (!NAME.test(name) || name === "local") throw fail("invalid or reserved name");
    const list = roles.split("+").filter(Boolean);
    if (list.length === 0 || list.some((r) => !ROLES.has(r)))
      throw fail(`roles must be among ${[...ROLES].join(", ")}`);
    if (token.length < 32) throw fail("token must have at least 32 characters");
    return { name, roles: list, sha256: createHash("sha256").update(token).digest("hex") };
  });
}
