// A realistic stack document tree for orchestration tests: an estate of 4 targets (one too small for the web
// service), functional requirements run by a shell script that records a ledger, services whose alias differs from
// the service name, stages, replicas, an as_group functional requirement, and policy templates in the older Rego
// syntax (a SAT policy with outputs, a SIT policy, two service policies).
import { create, fromJson } from "@bufbuild/protobuf";
import { ListValueSchema } from "@bufbuild/protobuf/wkt";
import { type Document, DocumentSchema } from "../../gen/stackl/v1/documents_pb.js";
import { repoRoot } from "./tools.js";

const STEP = `${repoRoot}/test/fixtures/stack/step.sh`;

function doc(name: string, spec: Document["spec"]): Document {
  return create(DocumentSchema, { meta: { name }, spec });
}

function fr(name: string, asGroup = false): Document {
  return doc(name, {
    case: "functionalRequirement",
    value: {
      invocation: { generic: { tool: "shell", command: [STEP] } },
      asGroup,
      params: { fr_default: name },
    } as never,
  });
}

export const SAT_POLICY = `package keep_out_of_zone

solutions = {"fulfilled": true, "targets": targets} {
  targets := [t | input.infrastructure_targets[t]; not endswith(t, input.parameters.zone)]
}
`;
// Older syntax SAT policy with per-target outputs.
export const SAT_OUTPUT_POLICY = `package label_targets

solutions = {"fulfilled": true, "targets": targets} {
  targets := [{"target": t, "rack": concat("-", ["rack", t])} | input.infrastructure_targets[t]]
}
`;
export const SIT_POLICY = `package no_forbidden

infringement[{"msg": msg}] {
  input.stack_instance_params.forbidden == true
  msg := sprintf("target %v forbids this stack", [input.target])
}
`;
export const FILTER_A = `package only_vm_app

filter = ["vm", "app"] { true }
`;
export const FILTER_B = `package no_app_on_z2

filter = frs {
  endswith(input.infrastructure_target, "z2")
  frs := ["vm"]
}
filter = frs {
  not endswith(input.infrastructure_target, "z2")
  frs := input.functional_requirements
}
`;

/** The estate and application documents. */
export function stackTree(): Document[] {
  const layer = (params: Record<string, string> = {}, extra: Record<string, unknown> = {}) => ({ params, ...extra });
  return [
    doc("prod", {
      case: "environment",
      value: layer({ region: "eu" }, { resources: { memory: "64GB" }, tags: { env: "prod" } }) as never,
    }),
    doc("brussels", { case: "location", value: layer({ city: "bru" }) as never }),
    doc("paris", { case: "location", value: layer({ city: "par" }) as never }),
    doc("z1", { case: "zone", value: layer({ zone: "z1" }) as never }),
    doc("z2", { case: "zone", value: layer({ zone: "z2" }) as never }),
    doc("z3", { case: "zone", value: layer({ zone: "z3" }, { policies: { no_forbidden: {} } }) as never }),
    doc("small", {
      case: "environment",
      value: layer({ region: "eu" }, { resources: { memory: "1GB" }, tags: { env: "prod" } }) as never,
    }),
    fr("network"),
    fr("vm"),
    fr("app"),
    fr("lb", true),
    doc("network_svc", { case: "service", value: { functionalRequirements: ["network"] } as never }),
    doc("web_svc", {
      case: "service",
      value: {
        functionalRequirements: ["vm", "app"],
        resourceRequirements: { memory: "8GB" },
        params: { size: "m" },
      } as never,
    }),
    doc("lb_svc", { case: "service", value: { functionalRequirements: ["lb"] } as never }),
    doc("keep_out_of_zone", {
      case: "policyTemplate",
      value: { policy: SAT_POLICY, inputs: ["service", "zone"] } as never,
    }),
    doc("label_targets", { case: "policyTemplate", value: { policy: SAT_OUTPUT_POLICY, outputs: ["rack"] } as never }),
    doc("no_forbidden", { case: "policyTemplate", value: { policy: SIT_POLICY } as never }),
    doc("only_vm_app", { case: "policyTemplate", value: { policy: FILTER_A } as never }),
    doc("no_app_on_z2", { case: "policyTemplate", value: { policy: FILTER_B } as never }),
    doc("web_filtered_svc", {
      case: "service",
      value: {
        functionalRequirements: ["vm", "app"],
        servicePolicies: [{ name: "only_vm_app" }, { name: "no_app_on_z2" }],
      } as never,
    }),
    doc("estate", {
      case: "stackInfrastructureTemplate",
      value: {
        infrastructureTargets: [
          { environment: "prod", location: "brussels", zone: "z1" },
          { environment: "prod", location: "brussels", zone: "z2" },
          { environment: "prod", location: "paris", zone: "z3" },
          { environment: "small", location: "paris", zone: "z1" },
        ],
      } as never,
    }),
    doc("webapp", {
      case: "stackApplicationTemplate",
      value: {
        services: [
          { name: "net", service: "network_svc" },
          { name: "web", service: "web_svc" },
          { name: "front", service: "lb_svc" },
        ],
        policies: { keep_out_of_zone: fromJson(ListValueSchema, [{ service: "web", zone: "z3" }]) },
        stages: [
          { name: "network", services: ["net"] },
          { name: "compute", services: ["web"] },
          { name: "edge", services: ["front"] },
        ],
      } as never,
    }),
    doc("plain", {
      case: "stackApplicationTemplate",
      value: {
        // No stages: template order (not alphabetical): zeta before alpha.
        services: [
          { name: "zeta", service: "network_svc" },
          { name: "alpha", service: "lb_svc" },
        ],
        policies: { label_targets: fromJson(ListValueSchema, [{ service: "zeta" }]) },
      } as never,
    }),
    doc("filtered", {
      case: "stackApplicationTemplate",
      value: { services: [{ name: "wf", service: "web_filtered_svc" }] } as never,
    }),
  ];
}
