import { queueToken } from "../bus/queue-name.js";

/**
 * Doorbell subjects of agents and jobs (core bus subjects: not persisted, fire-and-forget; PostgreSQL stays the
 * truth and a periodic reconcile covers a lost bell). The name a bell is about travels in the message body (UTF-8),
 * so subscribers use one wildcard subscription per kind; the subject token is the name encoded with `queueToken`.
 */

/** "Claimable jobs for target T" (an agent name or a pool): `stackl.jobs.target.<T>`. */
export const JOB_TARGET_SUBJECT = "stackl.jobs.target";
/** "Cancel job J": `stackl.jobs.cancel.<J>`; reaches the replica holding the job's agent. */
export const JOB_CANCEL_SUBJECT = "stackl.jobs.cancel";
/** "Agent A was revoked": `stackl.agents.revoke.<A>`; the holding replica cuts the stream at once. */
export const AGENT_REVOKE_SUBJECT = "stackl.agents.revoke";
/** "Drain agent A": `stackl.agents.drain.<A>`; the holding replica sends Drain and stops offering. */
export const AGENT_DRAIN_SUBJECT = "stackl.agents.drain";
/** "Agent A opened session S": `stackl.agents.session.<A>` (body: JSON `{name, session}`); older sessions end. */
export const AGENT_SESSION_SUBJECT = "stackl.agents.session";

/** The subject for `name` under `prefix`. */
export function subjectFor(prefix: string, name: string): string {
  return `${prefix}.${queueToken(name)}`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeName(name: string): Uint8Array {
  return encoder.encode(name);
}

export function decodeName(data: Uint8Array): string {
  return decoder.decode(data);
}
