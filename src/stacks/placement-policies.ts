import type { JsonObject } from "@bufbuild/protobuf";
import type { PolicyTemplate } from "../../gen/stackl/v1/documents_pb.js";
import type {
  OrchestrationGroups,
  PlacementPolicies,
  SatPolicyExtra,
  SitPolicyExtra,
} from "../domain/stack/placement.js";
import { ErrorCode, StacklError } from "../errors.js";
import {
  type ContractDecision,
  orchestrationRejectionGroups,
  orchestrationSolutionGroups,
  type ReplicasInput,
  replicasSolutions,
  satPolicySolutions,
  servicePolicyFilter,
  sitPolicyInfringements,
  type UserPolicy,
} from "../policy/contracts.js";
import { EncodedInput, spliceInput } from "../policy/policy-engine.js";
import {
  cappedDecisionValue,
  DECISION_VALUE_MAX_BYTES,
  type DecisionRecord,
  type TruncatedDecisionValue,
  truncatedDecisionValue,
} from "../store/decision-repo.js";

/** Policy templates by name, as loaded for one plan. */
export type PolicyTemplates = ReadonlyMap<string, PolicyTemplate>;

/**
 * STACKL's placement contracts on compiled bundles (built-ins and the stored policy templates), recording every
 * decision for the decision log.
 *
 * The placement input (every target and service: megabytes for 10,000 targets) is encoded to JSON once per plan;
 * orchestration gets it with `sort_hints` spliced in, SAT and SIT policies with their own members spliced in
 * (`spliceInput`), never re-encoded. Orchestration is evaluated in its grouped forms (`solution_groups`,
 * `rejection_groups`): the per-service forms repeat the same lists for every service (~180 MB of JSON at 1,000
 * services × 10,000 targets). A recorded input or result larger than DECISION_VALUE_MAX_BYTES is stored as
 * `{"truncated": true, "bytes", "sha256"}` of its JSON text (see cappedDecisionValue).
 */
export class RecordingPolicies implements PlacementPolicies {
  readonly decisions: DecisionRecord[] = [];
  /** The encoded JSON of each placement input seen (one per plan). */
  readonly #encoded = new WeakMap<JsonObject, EncodedInput>();
  /** The decision-log marker of each encoded input too large to record (orchestration records its input twice). */
  readonly #markers = new WeakMap<EncodedInput, TruncatedDecisionValue>();

  constructor(
    private readonly templates: PolicyTemplates,
    private readonly context: { stackInstance: string },
  ) {}

  /**
   * Records a decision; `input` is the value the policy was given (or the encoded JSON of it, with the value to
   * record when it is small enough to be stored as is).
   */
  private record<T>(phase: string, input: { value: () => unknown; encoded?: EncodedInput }, d: ContractDecision<T>): T {
    const recordedInput =
      input.encoded !== undefined && input.encoded.bytes.length > DECISION_VALUE_MAX_BYTES
        ? this.#truncated(input.encoded)
        : cappedDecisionValue(input.value());
    this.decisions.push({
      policy: d.policy,
      rule: d.rule,
      input: recordedInput,
      result: cappedDecisionValue(d.raw),
      durationMs: d.durationMs,
      stackInstance: this.context.stackInstance,
      phase,
      bundleSha256: d.bundleSha256,
    });
    return d.value;
  }

  #truncated(encoded: EncodedInput): TruncatedDecisionValue {
    let t = this.#markers.get(encoded);
    if (t === undefined) {
      t = truncatedDecisionValue(encoded.bytes);
      this.#markers.set(encoded, t);
    }
    return t;
  }

  #encode(input: JsonObject): EncodedInput {
    let e = this.#encoded.get(input);
    if (e === undefined) {
      e = EncodedInput.of(input);
      this.#encoded.set(input, e);
    }
    return e;
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

  async orchestration(input: JsonObject): Promise<OrchestrationGroups> {
    const base = this.#encode(input);
    // withSortHints(input), without encoding the input again.
    const encoded = spliceInput(base, {
      sort_hints: {
        infrastructure_targets: Object.keys((input.infrastructure_targets ?? {}) as JsonObject).sort(),
        services: Object.keys((input.services ?? {}) as JsonObject).sort(),
      },
    });
    const recorded = { value: () => input, encoded: base };
    const solution = this.record("orchestration", recorded, await orchestrationSolutionGroups(encoded));
    const rejections = this.record("orchestration", recorded, await orchestrationRejectionGroups(encoded));
    return { solution, rejections };
  }

  async satPolicy(name: string, input: JsonObject, extra: SatPolicyExtra) {
    const policy = this.userPolicy(name, `stack_application_template.policies["${name}"]`);
    const encoded = spliceInput(this.#encode(input), extra as unknown as Record<string, unknown>);
    const value = this.record(
      "sat_policy",
      { value: () => ({ ...input, ...extra }), encoded },
      await satPolicySolutions(policy, encoded),
    );
    if (!value.fulfilled) return { fulfilled: false as const, msg: value.msg };
    return { fulfilled: true as const, targets: value.targets };
  }

  async replicas(input: ReplicasInput) {
    const value = this.record("replicas", { value: () => input }, await replicasSolutions(input));
    if (!value.fulfilled) return { fulfilled: false as const, msg: value.msg };
    const services: Record<string, { service: string; targets: readonly string[] }> = {};
    for (const [alias, s] of Object.entries(value.services))
      services[alias] = { service: s.service, targets: s.targets };
    return { fulfilled: true as const, services };
  }

  async sitPolicy(name: string, input: JsonObject, extra: SitPolicyExtra) {
    const policy = this.userPolicy(name, `policies["${name}"]`);
    const encoded = spliceInput(this.#encode(input), extra as unknown as Record<string, unknown>);
    return this.record(
      "sit_policy",
      { value: () => ({ ...input, ...extra }), encoded },
      await sitPolicyInfringements(policy, encoded),
    );
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
    return this.record("service_policy", { value: () => input }, await servicePolicyFilter(policy, input));
  }
}
