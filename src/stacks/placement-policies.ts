import type { JsonObject } from "@bufbuild/protobuf";
import type { PolicyTemplate } from "../../gen/stackl/v1/documents_pb.js";
import type { PlacementPolicies } from "../domain/stack/placement.js";
import { ErrorCode, StacklError } from "../errors.js";
import {
  type ContractDecision,
  type OrchestrationInput,
  orchestrationRejections,
  orchestrationSolutions,
  type ReplicasInput,
  replicasSolutions,
  type SatPolicyInput,
  type SitPolicyInput,
  satPolicySolutions,
  servicePolicyFilter,
  sitPolicyInfringements,
  type UserPolicy,
} from "../policy/contracts.js";
import type { DecisionRecord } from "../store/decision-repo.js";

/** Policy templates by name, as loaded for one plan. */
export type PolicyTemplates = ReadonlyMap<string, PolicyTemplate>;

/**
 * STACKL's placement contracts on compiled bundles (built-ins and the stored policy templates), recording every
 * decision for the decision log.
 */
export class RecordingPolicies implements PlacementPolicies {
  readonly decisions: DecisionRecord[] = [];

  constructor(
    private readonly templates: PolicyTemplates,
    private readonly context: { stackInstance: string },
  ) {}

  private record<T>(phase: string, input: unknown, d: ContractDecision<T>): T {
    this.decisions.push({
      policy: d.policy,
      rule: d.rule,
      input,
      result: d.raw,
      durationMs: d.durationMs,
      stackInstance: this.context.stackInstance,
      phase,
      bundleSha256: d.bundleSha256,
    });
    return d.value;
  }

  userPolicy(name: string, field: string): UserPolicy {
    const t = this.templates.get(name);
    if (t === undefined) {
      throw StacklError.invalid([{ field, message: `policy template "${name}" does not exist` }]);
    }
    if (t.bundle.length === 0) {
      throw new StacklError(
        ErrorCode.FailedPrecondition,
        `policy template "${name}" has no compiled bundle: apply it where the opa CLI is installed, or with a prebuilt bundle`,
      );
    }
    return { name, bundle: t.bundle, outputs: t.outputs.length > 0 ? t.outputs : null };
  }

  async orchestration(input: JsonObject) {
    const value = this.record(
      "orchestration",
      input,
      await orchestrationSolutions(input as unknown as OrchestrationInput),
    );
    if (!value.fulfilled) return { fulfilled: false as const, msg: value.msg };
    const services: Record<string, { service: string; targets: readonly string[] }> = {};
    for (const [alias, s] of Object.entries(value.services))
      services[alias] = { service: s.service, targets: s.targets };
    return { fulfilled: true as const, services };
  }

  async orchestrationRejections(input: JsonObject) {
    const d = await orchestrationRejections(input as unknown as OrchestrationInput);
    const out: Record<string, Record<string, readonly { rule: string; msg: string }[]>> = {};
    for (const [alias, targets] of Object.entries(d.value)) {
      out[alias] = {};
      for (const [target, reasons] of Object.entries(targets)) {
        (out[alias] as Record<string, { rule: string; msg: string }[]>)[target] = reasons.map((r) => ({
          rule: r.rule,
          msg: r.msg,
        }));
      }
    }
    return out;
  }

  async satPolicy(name: string, input: JsonObject) {
    const policy = this.userPolicy(name, `stack_application_template.policies["${name}"]`);
    const value = this.record(
      "sat_policy",
      input,
      await satPolicySolutions(policy, input as unknown as SatPolicyInput),
    );
    if (!value.fulfilled) return { fulfilled: false as const, msg: value.msg };
    return { fulfilled: true as const, targets: value.targets };
  }

  async replicas(input: JsonObject) {
    const value = this.record("replicas", input, await replicasSolutions(input as unknown as ReplicasInput));
    if (!value.fulfilled) return { fulfilled: false as const, msg: value.msg };
    const services: Record<string, { service: string; targets: readonly string[] }> = {};
    for (const [alias, s] of Object.entries(value.services))
      services[alias] = { service: s.service, targets: s.targets };
    return { fulfilled: true as const, services };
  }

  async sitPolicy(name: string, input: JsonObject) {
    const policy = this.userPolicy(name, `policies["${name}"]`);
    return this.record("sit_policy", input, await sitPolicyInfringements(policy, input as unknown as SitPolicyInput));
  }

  /** Service policy `filter`: the functional requirements to run. */
  async serviceFilter(
    name: string,
    input: {
      inputs: Record<string, unknown>;
      functional_requirements: readonly string[];
      infrastructure_target: string;
      service: string;
      action: "create" | "update" | "delete";
      stack_instance: string;
    },
  ): Promise<readonly string[]> {
    const policy = this.userPolicy(name, `service.service_policies["${name}"]`);
    return this.record("service_policy", input, await servicePolicyFilter(policy, input));
  }
}
