import type { HandlerJob } from "../handler.js";

/**
 * The environment every process of a job starts with: the agent's environment (minus STACKL_AGENT_*, see
 * `agentBaseEnv`), then the literal `invocation.env`, then the job's context as STACKL_* variables (these win).
 */
export function jobEnv(job: HandlerJob): Record<string, string | undefined> {
  const spec = job.spec;
  return {
    ...job.env,
    ...(spec.invocation?.env ?? {}),
    STACKL_JOB_ID: job.id,
    STACKL_JOB_EPOCH: String(job.epoch),
    STACKL_ACTION: spec.action,
    STACKL_STACK_INSTANCE: spec.stackInstance,
    STACKL_SERVICE: spec.service,
    STACKL_FUNCTIONAL_REQUIREMENT: spec.functionalRequirement,
    STACKL_INFRASTRUCTURE_TARGETS: spec.infrastructureTargets.join(","),
    STACKL_HOSTS: spec.hosts.join(","),
    STACKL_SERVER_URL: job.serverUrl,
    STACKL_JOB_TOKEN: job.jobToken,
  };
}

/** The agent's environment without its own settings (STACKL_AGENT_*: server, enrollment token, …). */
export function agentBaseEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    if (!k.startsWith("STACKL_AGENT_")) out[k] = v;
  }
  return out;
}
