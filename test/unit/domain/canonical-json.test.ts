import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clone, create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DocumentSchema, InfrastructureTargetSchema } from "../../../gen/stackl/v1/documents_pb.js";
import { canonicalJson, documentContent, sameContent } from "../../../src/domain/canonical-json.js";
import { diffJson } from "../../../src/domain/json-diff.js";
import { environment, policyTemplate, service, sit } from "./builders.js";

describe("canonicalJson", () => {
  it("sorts keys at every level and drops undefined", () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } }),
      '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}',
    );
    assert.equal(canonicalJson({ b: 1, a: 2 }), canonicalJson({ a: 2, b: 1 }));
    assert.equal(canonicalJson([undefined]), "[null]");
    assert.equal(canonicalJson(undefined), "null");
  });
});

describe("documentContent", () => {
  it("is the proto JSON with proto field names, without output-only fields", () => {
    const doc = service(
      "web",
      { functionalRequirements: ["linux"], resourceRequirements: { memory: "2GB" }, params: { region: "eu" } },
      { description: "Web", labels: { team: "shop" } },
    );
    const stored = clone(DocumentSchema, doc);
    stored.meta!.revision = 7n;
    stored.meta!.createTime = timestampFromDate(new Date("2024-01-01T00:00:00Z"));
    stored.meta!.updatedBy = "alice";
    assert.deepEqual(documentContent(stored), {
      meta: { name: "web", labels: { team: "shop" }, description: "Web" },
      service: {
        functional_requirements: ["linux"],
        resource_requirements: { memory: "2GB" },
        params: { region: "eu" },
      },
    });
  });

  it("gives diffs with paths like service.params.region", () => {
    const before = service("web", { functionalRequirements: ["linux"], params: { region: "eu-west-1" } });
    const after = service("web", { functionalRequirements: ["linux", "nginx"], params: { region: "eu-central-1" } });
    assert.deepEqual(
      diffJson(documentContent(before), documentContent(after)).map((c) => c.path),
      ["service.functional_requirements[1]", "service.params.region"],
    );
  });
});

describe("sameContent", () => {
  it("ignores revision, times, authors, computed targets and bundle digests", () => {
    const a = sit("eu");
    const b = clone(DocumentSchema, a);
    b.meta!.revision = 3n;
    b.meta!.updateTime = timestampFromDate(new Date());
    b.meta!.createdBy = "bob";
    if (b.spec.case === "stackInfrastructureTemplate") {
      b.spec.value.targets = [create(InfrastructureTargetSchema, { key: "production.ireland.eu-west-1-a" })];
    }
    assert.ok(sameContent(a, b));
    const p1 = policyTemplate("p");
    const p2 = clone(DocumentSchema, p1);
    if (p2.spec.case === "policyTemplate") {
      p2.spec.value.bundleSha256 = "abc";
      p2.spec.value.entrypoints = ["p/allow"];
    }
    assert.ok(sameContent(p1, p2));
  });

  it("treats empty params as unset and ignores map order", () => {
    assert.ok(sameContent(environment("e", { params: {} }), environment("e")));
    assert.ok(
      sameContent(environment("e", { tags: { a: "1", b: "2" } }), environment("e", { tags: { b: "2", a: "1" } })),
    );
  });

  it("sees changes to the spec, labels, description, name and kind", () => {
    const base = service("web", { functionalRequirements: ["linux"] }, { description: "d", labels: { a: "1" } });
    assert.ok(
      !sameContent(
        base,
        service("web", { functionalRequirements: ["linux", "nginx"] }, { description: "d", labels: { a: "1" } }),
      ),
    );
    assert.ok(
      !sameContent(
        service("web", { functionalRequirements: ["linux", "nginx"] }),
        service("web", { functionalRequirements: ["nginx", "linux"] }),
      ),
    );
    assert.ok(
      !sameContent(
        base,
        service("web", { functionalRequirements: ["linux"] }, { description: "e", labels: { a: "1" } }),
      ),
    );
    assert.ok(
      !sameContent(
        base,
        service("web", { functionalRequirements: ["linux"] }, { description: "d", labels: { a: "2" } }),
      ),
    );
    assert.ok(
      !sameContent(
        base,
        service("web2", { functionalRequirements: ["linux"] }, { description: "d", labels: { a: "1" } }),
      ),
    );
    assert.ok(!sameContent(environment("x"), sit("x", {})));
    assert.ok(sameContent(base, clone(DocumentSchema, base)));
  });
});
