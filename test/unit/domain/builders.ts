/** Document builders for the domain unit tests. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import type { Document } from "../../../gen/stackl/v1/documents_pb.js";
import {
  DocumentSchema,
  FunctionalRequirementSchema,
  InfrastructureLayerSchema,
  PolicyTemplateSchema,
  ServiceSchema,
  StackApplicationTemplateSchema,
  StackInfrastructureTemplateSchema,
} from "../../../gen/stackl/v1/documents_pb.js";

type Init<S extends Parameters<typeof create>[0]> = MessageInitShape<S>;
type Meta = { description?: string; labels?: Record<string, string> };

export function environment(
  name: string,
  init: Init<typeof InfrastructureLayerSchema> = {},
  meta: Meta = {},
): Document {
  return create(DocumentSchema, {
    meta: { name, ...meta },
    spec: { case: "environment", value: create(InfrastructureLayerSchema, init) },
  });
}

export function location(name: string, init: Init<typeof InfrastructureLayerSchema> = {}, meta: Meta = {}): Document {
  return create(DocumentSchema, {
    meta: { name, ...meta },
    spec: { case: "location", value: create(InfrastructureLayerSchema, init) },
  });
}

export function zone(name: string, init: Init<typeof InfrastructureLayerSchema> = {}, meta: Meta = {}): Document {
  return create(DocumentSchema, {
    meta: { name, ...meta },
    spec: { case: "zone", value: create(InfrastructureLayerSchema, init) },
  });
}

/** A functional requirement; by default one `generic` mock invocation. */
export function functionalRequirement(
  name: string,
  init: Init<typeof FunctionalRequirementSchema> = { invocation: { generic: { tool: "mock" } } },
  meta: Meta = {},
): Document {
  return create(DocumentSchema, {
    meta: { name, ...meta },
    spec: { case: "functionalRequirement", value: create(FunctionalRequirementSchema, init) },
  });
}

/** A service; by default with the one functional requirement `linux`. */
export function service(
  name: string,
  init: Init<typeof ServiceSchema> = { functionalRequirements: ["linux"] },
  meta: Meta = {},
): Document {
  return create(DocumentSchema, {
    meta: { name, ...meta },
    spec: { case: "service", value: create(ServiceSchema, init) },
  });
}

/** A stack application template; by default one service `web` (alias `web`). */
export function sat(
  name: string,
  init: Init<typeof StackApplicationTemplateSchema> = { services: [{ name: "web", service: "web" }] },
  meta: Meta = {},
): Document {
  return create(DocumentSchema, {
    meta: { name, ...meta },
    spec: { case: "stackApplicationTemplate", value: create(StackApplicationTemplateSchema, init) },
  });
}

/** A stack infrastructure template; by default the one target `production.ireland.eu-west-1-a`. */
export function sit(
  name: string,
  init: Init<typeof StackInfrastructureTemplateSchema> = {
    infrastructureTargets: [{ environment: "production", location: "ireland", zone: "eu-west-1-a" }],
  },
  meta: Meta = {},
): Document {
  return create(DocumentSchema, {
    meta: { name, ...meta },
    spec: { case: "stackInfrastructureTemplate", value: create(StackInfrastructureTemplateSchema, init) },
  });
}

/** A policy template whose Rego package is its name unless `init` says otherwise. */
export function policyTemplate(name: string, init: Init<typeof PolicyTemplateSchema> = {}, meta: Meta = {}): Document {
  return create(DocumentSchema, {
    meta: { name, ...meta },
    spec: {
      case: "policyTemplate",
      value: create(PolicyTemplateSchema, { policy: `package ${name}\n\nallow = true\n`, ...init }),
    },
  });
}

/** A document without a spec. */
export function noSpec(name: string): Document {
  return create(DocumentSchema, { meta: { name } });
}
