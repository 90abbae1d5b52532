import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { validateBatch, validateDocument } from "../../../src/domain/validate-document.js";
import type { FieldViolation } from "../../../src/errors.js";
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

const fields = (violations: FieldViolation[]): string[] => violations.map((v) => v.field);

function only(violations: FieldViolation[], field: string, message: RegExp): void {
  assert.deepEqual(fields(violations), [field], JSON.stringify(violations));
  assert.match(violations[0]?.message ?? "", message);
}

describe("validateDocument", () => {
  it("accepts a valid document of every kind", () => {
    const docs = [
      environment("production", { params: { region: "eu" }, policies: { allowed_images: { repositories: [] } } }),
      location("ireland"),
      zone("eu-west-1-a"),
      functionalRequirement("linux", {
        invocation: {
          generic: { tool: "shell", command: ["./deploy.sh"] },
          aws: { tool: "tofu" },
          vmw: { tool: "packer" },
          ans: { tool: "ansible" },
          tf: { tool: "terraform" },
        },
        outputsFormat: "json",
      }),
      service("web", { functionalRequirements: ["linux", "nginx"], servicePolicies: [{ name: "only_nginx" }] }),
      sat("webshop", {
        services: [
          { name: "web", service: "web" },
          { name: "db", service: "database" },
        ],
        stages: [
          { name: "data", services: ["db"] },
          { name: "app", services: ["web"] },
        ],
        policies: {
          keep_in_location: {
            values: [
              {
                kind: {
                  case: "structValue",
                  value: { fields: { service: { kind: { case: "stringValue", value: "db" } } } },
                },
              },
            ],
          },
        },
      }),
      sit("eu-platform"),
      policyTemplate("keep_in_location"),
    ];
    for (const doc of docs) assert.deepEqual(validateDocument(doc, "documents[0]"), [], doc.meta?.name);
  });

  it("requires a spec", () => {
    only(validateDocument(noSpec("x"), "documents[1]"), "documents[1].spec", /exactly one spec/);
  });

  it("checks the name and labels under meta", () => {
    only(validateDocument(zone("eu.west"), "documents[0]"), "documents[0].meta.name", /must not contain "\."/);
    only(validateDocument(zone(""), "documents[0]"), "documents[0].meta.name", /required/);
    only(
      validateDocument(zone("a", {}, { labels: { "bad key": "v" } }), "documents[0]"),
      'documents[0].meta.labels["bad key"]',
      /label key/,
    );
    only(validateDocument(policyTemplate("keep-in-location"), "d"), "d.meta.name", /Rego package name/);
  });

  it("uses paths relative to the document when the prefix is empty", () => {
    only(validateDocument(service("web", {}), ""), "service.functional_requirements", /at least one/);
  });

  describe("infrastructure layers", () => {
    it("require policy names that are policy template names", () => {
      only(
        validateDocument(location("ireland", { policies: { "allowed-images": {} } }), "documents[2]"),
        'documents[2].location.policies["allowed-images"]',
        /Rego package name/,
      );
    });
  });

  describe("functional requirements", () => {
    const path = "documents[3].functional_requirement";
    it("need at least one invocation", () => {
      only(validateDocument(functionalRequirement("fr", {}), "documents[3]"), `${path}.invocation`, /at least one/);
    });

    it("need a known tool", () => {
      only(
        validateDocument(functionalRequirement("fr", { invocation: { generic: { tool: "" } } }), "documents[3]"),
        `${path}.invocation["generic"].tool`,
        /a tool is required/,
      );
      only(
        validateDocument(functionalRequirement("fr", { invocation: { aws: { tool: "chef" } } }), "documents[3]"),
        `${path}.invocation["aws"].tool`,
        /unknown tool "chef"; known tools: shell, tofu, terraform, ansible, mock, packer/,
      );
    });

    it("need a command for shell", () => {
      only(
        validateDocument(functionalRequirement("fr", { invocation: { generic: { tool: "shell" } } }), "documents[3]"),
        `${path}.invocation["generic"].command`,
        /needs a command/,
      );
      only(
        validateDocument(
          functionalRequirement("fr", { invocation: { generic: { tool: "shell", command: ["", "x"] } } }),
          "documents[3]",
        ),
        `${path}.invocation["generic"].command[0]`,
        /must not be empty/,
      );
    });

    it("check numbers, outputs and the outputs format", () => {
      const doc = functionalRequirement("fr", {
        invocation: { generic: { tool: "mock", timeoutSeconds: -1, serial: -2 } },
        outputs: { ip: "" },
        outputsFormat: "xml",
      });
      assert.deepEqual(fields(validateDocument(doc, "d")), [
        'd.functional_requirement.invocation["generic"].timeout_seconds',
        'd.functional_requirement.invocation["generic"].serial',
        'd.functional_requirement.outputs["ip"]',
        "d.functional_requirement.outputs_format",
      ]);
    });
  });

  describe("services", () => {
    it("need at least one functional requirement", () => {
      only(
        validateDocument(service("web", {}), "documents[4]"),
        "documents[4].service.functional_requirements",
        /at least one/,
      );
    });

    it("reject duplicate and invalid functional requirement names", () => {
      const doc = service("web", { functionalRequirements: ["linux", "nginx", "linux", "bad.name"] });
      const violations = validateDocument(doc, "documents[3]");
      assert.deepEqual(fields(violations), [
        "documents[3].service.functional_requirements[2]",
        "documents[3].service.functional_requirements[3]",
      ]);
      assert.match(
        violations[0]?.message ?? "",
        /duplicate functional requirement "linux" \(first at functional_requirements\[0\]\)/,
      );
    });

    it("require service policy names that are policy template names", () => {
      only(
        validateDocument(
          service("web", { functionalRequirements: ["linux"], servicePolicies: [{ name: "a-b" }] }),
          "d",
        ),
        "d.service.service_policies[0].name",
        /Rego package name/,
      );
    });
  });

  describe("stack application templates", () => {
    const p = "documents[5].stack_application_template";
    const policyEntry = (fieldsInit: Record<string, string | number>) => ({
      kind: {
        case: "structValue" as const,
        value: {
          fields: Object.fromEntries(
            Object.entries(fieldsInit).map(([k, v]) => [
              k,
              typeof v === "string"
                ? { kind: { case: "stringValue" as const, value: v } }
                : { kind: { case: "numberValue" as const, value: v } },
            ]),
          ),
        },
      },
    });

    it("need services with unique, valid aliases", () => {
      only(validateDocument(sat("s", {}), "documents[5]"), `${p}.services`, /at least one service/);
      const doc = sat("s", {
        services: [
          { name: "web", service: "web" },
          { name: "web", service: "web2" },
          { name: "a.b", service: "" },
        ],
      });
      const violations = validateDocument(doc, "documents[5]");
      assert.deepEqual(fields(violations), [
        `${p}.services[1].name`,
        `${p}.services[2].name`,
        `${p}.services[2].service`,
      ]);
      assert.match(violations[0]?.message ?? "", /duplicate service alias "web" \(first at services\[0\]\)/);
    });

    it("need stages naming aliases, each alias in one stage", () => {
      const doc = sat("s", {
        services: [
          { name: "web", service: "web" },
          { name: "db", service: "database" },
        ],
        stages: [
          { name: "one", services: ["db", "database"] },
          { name: "two", services: ["db", "web"] },
          { name: "", services: [] },
          { name: "one", services: ["web"] },
        ],
      });
      const violations = validateDocument(doc, "documents[5]");
      assert.deepEqual(fields(violations), [
        `${p}.stages[0].services[1]`,
        `${p}.stages[1].services[0]`,
        `${p}.stages[2].name`,
        `${p}.stages[2].services`,
        `${p}.stages[3].name`,
        `${p}.stages[3].services[0]`,
      ]);
      assert.match(
        violations[0]?.message ?? "",
        /"database" is not a service alias of this template \(aliases: web, db\)/,
      );
      assert.match(violations[1]?.message ?? "", /already in stages\[0\]/);
      assert.match(violations[4]?.message ?? "", /duplicate stage name "one"/);
    });

    it("need policy entries that are objects naming an alias", () => {
      const doc = sat("s", {
        services: [{ name: "db", service: "database" }],
        policies: {
          keep_in_location: {
            values: [
              policyEntry({ service: "db", location: "ireland" }),
              { kind: { case: "stringValue", value: "db" } },
              policyEntry({ location: "ireland" }),
              policyEntry({ service: "web" }),
              policyEntry({ service: 3 }),
            ],
          },
          "bad-policy": { values: [policyEntry({ service: "db" })] },
        },
      });
      const violations = validateDocument(doc, "documents[5]");
      assert.deepEqual(fields(violations), [
        `${p}.policies["bad-policy"]`,
        `${p}.policies["keep_in_location"][1]`,
        `${p}.policies["keep_in_location"][2].service`,
        `${p}.policies["keep_in_location"][3].service`,
        `${p}.policies["keep_in_location"][4].service`,
      ]);
      assert.match(violations[1]?.message ?? "", /must be an object/);
      assert.match(violations[3]?.message ?? "", /"web" is not a service alias/);
    });
  });

  describe("stack infrastructure templates", () => {
    const p = "documents[6].stack_infrastructure_template";
    it("need at least one target", () => {
      only(validateDocument(sit("s", {}), "documents[6]"), `${p}.infrastructure_targets`, /at least one/);
    });

    it("reject duplicate targets and invalid parts", () => {
      const t = { environment: "production", location: "ireland", zone: "eu-west-1-a" };
      const doc = sit("s", {
        infrastructureTargets: [t, { ...t, zone: "eu.west.1" }, t, { environment: "", location: "ireland", zone: "z" }],
      });
      const violations = validateDocument(doc, "documents[6]");
      assert.deepEqual(fields(violations), [
        `${p}.infrastructure_targets[1].zone`,
        `${p}.infrastructure_targets[2]`,
        `${p}.infrastructure_targets[3].environment`,
      ]);
      assert.match(
        violations[1]?.message ?? "",
        /duplicate infrastructure target "production.ireland.eu-west-1-a" \(first at infrastructure_targets\[0\]\)/,
      );
    });
  });

  describe("policy templates", () => {
    const p = "documents[7].policy_template";
    it("need a policy or a bundle", () => {
      only(
        validateDocument(policyTemplate("p", { policy: "" }), "documents[7]"),
        `${p}.policy`,
        /Rego policy .* or a prebuilt bundle/,
      );
      assert.deepEqual(validateDocument(policyTemplate("p", { policy: "", bundle: new Uint8Array([1]) }), "d"), []);
    });

    it("need the package to equal the name", () => {
      only(
        validateDocument(policyTemplate("keep_in_location", { policy: "package other\nx = 1" }), "documents[7]"),
        `${p}.policy`,
        /package "other" \(line 1\) must equal the document name "keep_in_location"/,
      );
      assert.deepEqual(
        validateDocument(policyTemplate("p", { policy: "# comment\n\n# more\npackage p\n" }), "documents[7]"),
        [],
      );
      only(
        validateDocument(policyTemplate("p", { policy: "x = 1\n" }), "documents[7]"),
        `${p}.policy`,
        /first statement/,
      );
    });

    it("know the Rego versions", () => {
      assert.deepEqual(validateDocument(policyTemplate("p", { regoVersion: "v1" }), "d"), []);
      only(validateDocument(policyTemplate("p", { regoVersion: "v2" }), "d"), "d.policy_template.rego_version", /v0/);
    });
  });
});

describe("validateBatch", () => {
  it("prefixes every document with its index", () => {
    const violations = validateBatch([service("web"), service("db", {}), zone("a.b")]);
    assert.deepEqual(fields(violations), ["documents[1].service.functional_requirements", "documents[2].meta.name"]);
  });

  it("flags the same kind and name twice", () => {
    const violations = validateBatch([service("web"), zone("web"), service("db"), service("web")], "req.docs");
    only(violations, "req.docs[3].meta.name", /duplicate service "web" in this batch \(first at req\.docs\[0\]\)/);
  });

  it("accepts an empty batch", () => {
    assert.deepEqual(validateBatch([]), []);
  });
});
