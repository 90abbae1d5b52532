import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DocumentKind as ProtoDocumentKind } from "../../../gen/stackl/v1/documents_pb.js";
import {
  DOCUMENT_KINDS,
  documentKinds,
  findKind,
  kindFromProto,
  kindFromSpecCase,
  kindFromStacklType,
  kindInfo,
  kindOf,
  parseKind,
  protoKindOf,
} from "../../../src/domain/document-kinds.js";
import { isStacklError } from "../../../src/errors.js";
import { noSpec, policyTemplate, service, zone } from "./builders.js";

describe("document kinds", () => {
  it("has one row per proto enum value, in enum order", () => {
    assert.deepEqual(documentKinds, [
      "environment",
      "location",
      "zone",
      "functional_requirement",
      "service",
      "stack_application_template",
      "stack_infrastructure_template",
      "policy_template",
    ]);
    assert.deepEqual(
      DOCUMENT_KINDS.map((k) => k.proto),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    for (const info of DOCUMENT_KINDS) {
      assert.equal(kindFromProto(info.proto), info.kind);
      assert.equal(protoKindOf(info.kind), info.proto);
      assert.equal(kindFromSpecCase(info.specCase), info.kind);
      assert.equal(kindFromStacklType(info.stacklType), info.kind);
      assert.equal(info.stacklType, info.kind);
    }
    assert.equal(kindFromProto(ProtoDocumentKind.UNSPECIFIED), undefined);
  });

  it("keeps the original categories", () => {
    assert.equal(kindInfo("service").category, "items");
    for (const kind of documentKinds.filter((k) => k !== "service")) assert.equal(kindInfo(kind).category, "configs");
  });

  it("maps spec cases to kinds", () => {
    assert.equal(kindInfo("functional_requirement").specCase, "functionalRequirement");
    assert.equal(kindInfo("stack_application_template").specCase, "stackApplicationTemplate");
    assert.equal(kindInfo("stack_infrastructure_template").specCase, "stackInfrastructureTemplate");
    assert.equal(kindInfo("policy_template").specCase, "policyTemplate");
  });

  it("finds the kind of a document", () => {
    assert.equal(kindOf(service("web")), "service");
    assert.equal(kindOf(zone("eu-west-1-a")), "zone");
    assert.equal(kindOf(policyTemplate("p")), "policy_template");
    assert.equal(kindOf(noSpec("x")), undefined);
  });

  it("parses every CLI alias", () => {
    const cases: [string, string][] = [
      ["environment", "environment"],
      ["environments", "environment"],
      ["env", "environment"],
      ["location", "location"],
      ["loc", "location"],
      ["zone", "zone"],
      ["functional_requirement", "functional_requirement"],
      ["functional-requirement", "functional_requirement"],
      ["fr", "functional_requirement"],
      ["service", "service"],
      ["svc", "service"],
      ["stack_application_template", "stack_application_template"],
      ["sat", "stack_application_template"],
      ["stack_infrastructure_template", "stack_infrastructure_template"],
      ["sit", "stack_infrastructure_template"],
      ["policy_template", "policy_template"],
      ["policy", "policy_template"],
      ["policy-template", "policy_template"],
      [" SAT ", "stack_application_template"],
      ["Functional-Requirement", "functional_requirement"],
    ];
    for (const [text, kind] of cases) assert.equal(parseKind(text), kind, text);
    assert.equal(findKind("instance"), undefined);
  });

  it("rejects an unknown kind with a message listing the valid ones", () => {
    assert.throws(
      () => parseKind("instance"),
      (err: unknown) => {
        assert.ok(isStacklError(err, "invalid_argument"));
        assert.equal(err.violations[0]?.field, "kind");
        const message = err.violations[0]?.message ?? "";
        assert.match(message, /unknown document kind "instance"/);
        for (const kind of documentKinds) assert.ok(message.includes(kind), kind);
        assert.match(message, /sat/);
        return true;
      },
    );
  });
});
