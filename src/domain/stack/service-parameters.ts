/**
 * Parameters and secrets of one service on one target, in the original's precedence (reference 3.12), lowest first:
 * params: environment → location → zone (the merged target) → FR params (FR by FR, in service order) → service
 * params → instance params → service_params[alias] → SAT-policy outputs → outputs (instance outputs, then this
 * service-on-target's own outputs).
 * secrets: target secrets → service secrets → FR secrets (FR by FR) → instance secrets → service_secrets[alias].
 * Unlike the original, outputs are never lost on update: they are layers, not a copy written into the parameters.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import type { FunctionalRequirement, InfrastructureTarget, Service } from "../../../gen/stackl/v1/documents_pb.js";

export interface ParameterLayers {
  target: InfrastructureTarget;
  service: Service;
  functionalRequirements: FunctionalRequirement[];
  instanceParams: JsonObject;
  serviceParams: JsonObject;
  opaOutputs: JsonObject;
  instanceOutputs: JsonObject;
  ownOutputs: JsonObject;
  instanceSecrets: Record<string, string>;
  serviceSecrets: Record<string, string>;
}

export function mergeParameters(l: ParameterLayers): JsonObject {
  let params: JsonObject = { ...(l.target.params ?? {}) };
  for (const fr of l.functionalRequirements) params = { ...params, ...(fr.params ?? {}) };
  return {
    ...params,
    ...(l.service.params ?? {}),
    ...l.instanceParams,
    ...l.serviceParams,
    ...l.opaOutputs,
    ...l.instanceOutputs,
    ...l.ownOutputs,
  };
}

export function mergeSecrets(l: ParameterLayers): Record<string, string> {
  let secrets: Record<string, string> = { ...l.target.secrets, ...l.service.secrets };
  for (const fr of l.functionalRequirements) secrets = { ...secrets, ...fr.secrets };
  return { ...secrets, ...l.instanceSecrets, ...l.serviceSecrets };
}
