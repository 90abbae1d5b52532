import path from "node:path";
import type { JobSpec } from "../../gen/stackl/v1/jobs_pb.js";

/**
 * Directory layout under the agent's `--work-dir`:
 *
 *   instances/<stack_instance>/<service>/<functional_requirement>/<targets>/   persistent per instance (tofu state)
 *   adhoc/<job id>/                                                           persistent dir of an ad-hoc job
 *   jobs/<job id>-<epoch>/                                                    scratch, removed when the job ends
 *
 * Every segment comes from the server, so it is reduced to `[A-Za-z0-9._-]` and can never be `.` or `..`.
 */

/** A single safe path segment: other characters become `_`; `.`/`..`/empty become `_`. */
export function safeSegment(value: string): string {
  const s = value.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 200);
  return s === "" || s === "." || s === ".." ? "_" : s;
}

/** The persistent working directory of a job (see the module comment). */
export function instanceWorkDir(root: string, jobId: string, spec: JobSpec): string {
  if (spec.stackInstance === "") return path.join(root, "adhoc", safeSegment(jobId));
  const targets = spec.infrastructureTargets.length > 0 ? spec.infrastructureTargets.join("+") : "_";
  return path.join(
    root,
    "instances",
    safeSegment(spec.stackInstance),
    safeSegment(spec.service),
    safeSegment(spec.functionalRequirement),
    safeSegment(targets),
  );
}

/** The scratch directory of one job attempt. */
export function jobScratchDir(root: string, jobId: string, epoch: bigint): string {
  return path.join(root, "jobs", `${safeSegment(jobId)}-${epoch}`);
}

/** An invocation path: absolute as given, relative against the agent's work dir; undefined when empty. */
export function resolveInvocationPath(agentWorkDir: string, p: string): string | undefined {
  if (p === "") return undefined;
  return path.resolve(agentWorkDir, p);
}
