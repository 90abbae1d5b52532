/**
 * References from one document to others. The store checks them on write (every referenced document must exist in
 * the store or the same batch) and keeps a reverse index of them to refuse deleting a referenced document.
 */
import type { Document, InfrastructureLayer } from "../../gen/stackl/v1/documents_pb.js";
import type { FieldViolation } from "../errors.js";
import type { DocumentKind } from "./document-kinds.js";
import { kindInfo } from "./document-kinds.js";
import { fieldPath, indexPath, keyPath } from "./field-path.js";

/** One reference: the document it names and the field (relative to the document) that names it. */
export interface DocumentReference {
  readonly kind: DocumentKind;
  readonly name: string;
  /** E.g. `service.functional_requirements[1]` or `stack_application_template.policies["keep_in_location"]`. */
  readonly field: string;
}

/** Every reference made by `doc`, in field order (map keys sorted). Empty names are skipped (validation reports them). */
export function referencesOf(doc: Document): DocumentReference[] {
  const refs: DocumentReference[] = [];
  const add = (kind: DocumentKind, name: string, field: string): void => {
    if (name !== "") refs.push({ kind, name, field });
  };
  const spec = doc.spec;
  switch (spec.case) {
    case undefined:
      break;
    case "environment":
    case "location":
    case "zone":
      layerPolicyRefs(spec.value, spec.case, add);
      break;
    case "functionalRequirement":
      break;
    case "service": {
      const svc = spec.value;
      for (const [i, fr] of svc.functionalRequirements.entries()) {
        add("functional_requirement", fr, indexPath("service.functional_requirements", i));
      }
      for (const [i, policy] of svc.servicePolicies.entries()) {
        add("policy_template", policy.name, fieldPath(indexPath("service.service_policies", i), "name"));
      }
      break;
    }
    case "stackApplicationTemplate": {
      const sat = spec.value;
      for (const [i, ref] of sat.services.entries()) {
        add("service", ref.service, fieldPath(indexPath("stack_application_template.services", i), "service"));
      }
      for (const name of Object.keys(sat.policies).sort()) {
        add("policy_template", name, keyPath("stack_application_template.policies", name));
      }
      break;
    }
    case "stackInfrastructureTemplate":
      for (const [i, target] of spec.value.infrastructureTargets.entries()) {
        const at = indexPath("stack_infrastructure_template.infrastructure_targets", i);
        add("environment", target.environment, fieldPath(at, "environment"));
        add("location", target.location, fieldPath(at, "location"));
        add("zone", target.zone, fieldPath(at, "zone"));
      }
      break;
    case "policyTemplate":
      break;
    default: {
      const never: never = spec;
      throw new Error(`unhandled document spec ${JSON.stringify(never)}`);
    }
  }
  return refs;
}

function layerPolicyRefs(
  layer: InfrastructureLayer,
  kind: "environment" | "location" | "zone",
  add: (kind: DocumentKind, name: string, field: string) => void,
): void {
  for (const name of Object.keys(layer.policies).sort())
    add("policy_template", name, keyPath(`${kind}.policies`, name));
}

/**
 * Violations for references of `doc` that `exists` does not resolve; each field is prefixed with `path`
 * (e.g. `documents[2]` gives `documents[2].service.functional_requirements[0]`).
 */
export function unresolvedReferences(
  doc: Document,
  path: string,
  exists: (kind: DocumentKind, name: string) => boolean,
): FieldViolation[] {
  return referencesOf(doc)
    .filter((ref) => !exists(ref.kind, ref.name))
    .map((ref) => ({
      field: fieldPath(path, ref.field),
      message: `${kindInfo(ref.kind).singular} ${JSON.stringify(ref.name)} does not exist`,
    }));
}
