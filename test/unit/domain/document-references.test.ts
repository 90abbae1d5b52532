import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fromJson } from "@bufbuild/protobuf";
import { ListValueSchema } from "@bufbuild/protobuf/wkt";
import { referencesOf, unresolvedReferences } from "../../../src/domain/document-references.js";
import {
  environment,
  functionalRequirement,
  location,
  noSpec,
  policyTemplate,
  sat,
  service,
  sit,
  zone,
} from "./builders.js";

describe("referencesOf", () => {
  it("lists a service's functional requirements and service policies", () => {
    const doc = service("web", {
      functionalRequirements: ["linux", "nginx"],
      servicePolicies: [{ name: "only_on_create", inputs: {} }],
    });
    assert.deepEqual(referencesOf(doc), [
      { kind: "functional_requirement", name: "linux", field: "service.functional_requirements[0]" },
      { kind: "functional_requirement", name: "nginx", field: "service.functional_requirements[1]" },
      { kind: "policy_template", name: "only_on_create", field: "service.service_policies[0].name" },
    ]);
  });

  it("lists a SAT's services and policy templates (sorted by name)", () => {
    const doc = sat("webshop", {
      services: [
        { name: "frontend", service: "web" },
        { name: "db", service: "database" },
      ],
      policies: {
        separate: fromJson(ListValueSchema, [{ service: "db" }]),
        keep_in_location: fromJson(ListValueSchema, [{ service: "db", location: "ireland" }]),
      },
    });
    assert.deepEqual(referencesOf(doc), [
      { kind: "service", name: "web", field: "stack_application_template.services[0].service" },
      { kind: "service", name: "database", field: "stack_application_template.services[1].service" },
      {
        kind: "policy_template",
        name: "keep_in_location",
        field: 'stack_application_template.policies["keep_in_location"]',
      },
      { kind: "policy_template", name: "separate", field: 'stack_application_template.policies["separate"]' },
    ]);
  });

  it("lists a SIT's environments, locations and zones", () => {
    const doc = sit("eu", {
      infrastructureTargets: [
        { environment: "production", location: "ireland", zone: "eu-west-1-a" },
        { environment: "production", location: "frankfurt", zone: "eu-central-1-a" },
      ],
    });
    const at = "stack_infrastructure_template.infrastructure_targets";
    assert.deepEqual(referencesOf(doc), [
      { kind: "environment", name: "production", field: `${at}[0].environment` },
      { kind: "location", name: "ireland", field: `${at}[0].location` },
      { kind: "zone", name: "eu-west-1-a", field: `${at}[0].zone` },
      { kind: "environment", name: "production", field: `${at}[1].environment` },
      { kind: "location", name: "frankfurt", field: `${at}[1].location` },
      { kind: "zone", name: "eu-central-1-a", field: `${at}[1].zone` },
    ]);
  });

  it("lists the SIT policies of environments, locations and zones", () => {
    const policies = { b_policy: {}, a_policy: { x: 1 } };
    for (const [doc, kind] of [
      [environment("e", { policies }), "environment"],
      [location("l", { policies }), "location"],
      [zone("z", { policies }), "zone"],
    ] as const) {
      assert.deepEqual(referencesOf(doc), [
        { kind: "policy_template", name: "a_policy", field: `${kind}.policies["a_policy"]` },
        { kind: "policy_template", name: "b_policy", field: `${kind}.policies["b_policy"]` },
      ]);
    }
  });

  it("finds none in functional requirements, policy templates and spec-less documents", () => {
    assert.deepEqual(referencesOf(functionalRequirement("linux")), []);
    assert.deepEqual(referencesOf(policyTemplate("p")), []);
    assert.deepEqual(referencesOf(noSpec("x")), []);
  });

  it("skips empty names (validation reports them)", () => {
    assert.deepEqual(referencesOf(service("web", { functionalRequirements: [""] })), []);
  });
});

describe("unresolvedReferences", () => {
  it("reports each missing document at its prefixed field", () => {
    const existing = new Set(["functional_requirement/linux"]);
    const violations = unresolvedReferences(
      service("web", { functionalRequirements: ["linux", "nginx"] }),
      "documents[2]",
      (kind, name) => existing.has(`${kind}/${name}`),
    );
    assert.deepEqual(violations, [
      {
        field: "documents[2].service.functional_requirements[1]",
        message: 'functional requirement "nginx" does not exist',
      },
    ]);
  });
});
