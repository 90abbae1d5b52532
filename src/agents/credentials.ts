import { randomBytes } from "node:crypto";
import { sha256Hex } from "../store/job-repo.js";

/**
 * Agent secrets. Enrollment tokens are `<id>.<secret>` (the id is public, for audit; the secret has 256 bits);
 * agent credentials are `sac_<secret>` (256 bits). Only their SHA-256 is stored; they are shown once.
 */

/** A new enrollment token for the token id `id`. */
export function newEnrollmentToken(id: string): string {
  return `${id}.${randomBytes(32).toString("base64url")}`;
}

/** A new agent credential. */
export function newAgentCredential(): string {
  return `sac_${randomBytes(32).toString("base64url")}`;
}

/** What is stored for a token or credential. */
export function secretHash(secret: string): string {
  return sha256Hex(secret);
}
