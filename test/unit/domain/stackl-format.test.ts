import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, equals, toJson } from "@bufbuild/protobuf";
import { ListValueSchema } from "@bufbuild/protobuf/wkt";
import type { Document } from "../../../gen/stackl/v1/documents_pb.js";
import { DocumentSchema, InfrastructureTargetSchema } from "../../../gen/stackl/v1/documents_pb.js";
import {
  detectFormat,
  fromNativeObject,
  fromStacklObject,
  parseDocumentObject,
  parseDocumentText,
  toStacklObject,
} from "../../../src/domain/stackl-format.js";
import { validateDocument } from "../../../src/domain/validate-document.js";

function convert(obj: unknown, path = "doc"): Document {
  const result = fromStacklObject(obj, path);
  assert.deepEqual(result.violations, []);
  assert.ok(result.doc !== undefined);
  return result.doc;
}

function specOf<C extends NonNullable<Document["spec"]["case"]>>(doc: Document, specCase: C) {
  assert.equal(doc.spec.case, specCase);
  return doc.spec.value as Extract<Document["spec"], { case: C }>["value"];
}

describe("fromStacklObject", () => {
  it("converts an environment with pydantic-style coercion", () => {
    const doc = convert({
      name: "production",
      type: "environment",
      category: "configs",
      description: "Production",
      cloud_provider: "aws",
      agent: "prod",
      params: { region: "eu-west-1", size: 3, nested: { a: [1, "x", null] } },
      secrets: { key: "env:KEY", pin: 1234 },
      resources: { memory: "32GB", cpu: 16, gpu: 0.5, ssd: true },
      tags: { environment: "production", tier: 1, ha: false },
      policies: { allowed_images: { repositories: ["a/"] }, no_params: null },
      outputs: { unused: 1 },
    });
    assert.equal(doc.meta?.name, "production");
    assert.equal(doc.meta?.description, "Production");
    const env = specOf(doc, "environment");
    assert.equal(env.cloudProvider, "aws");
    assert.equal(env.agent, "prod");
    assert.deepEqual(env.params, { region: "eu-west-1", size: 3, nested: { a: [1, "x", null] } });
    assert.deepEqual(env.secrets, { key: "env:KEY", pin: "1234" });
    assert.deepEqual(env.resources, { memory: "32GB", cpu: "16", gpu: "0.5", ssd: "true" });
    assert.deepEqual(env.tags, { environment: "production", tier: "1", ha: "false" });
    assert.deepEqual(env.policies, { allowed_images: { repositories: ["a/"] }, no_params: {} });
    assert.deepEqual(env.outputs, { unused: 1 });
  });

  it("converts location and zone with the same shape", () => {
    assert.equal(convert({ name: "ireland", type: "location", params: { r: 1 } }).spec.case, "location");
    assert.equal(convert({ name: "eu-west-1-a", type: "zone" }).spec.case, "zone");
  });

  it("converts a functional requirement with every invocation field", () => {
    const doc = convert({
      name: "nginx",
      type: "functional_requirement",
      category: "configs",
      params: { port: 80 },
      secrets: { password: "env:PW" },
      outputs: { ip: "instance.ip" },
      outputs_format: "json",
      as_group: "yes",
      invocation: {
        generic: {
          tool: "ansible",
          image: "registry/nginx:1",
          description: "nginx role",
          before_command: null,
          playbook_path: "/p.yml",
          ansible_role: "nginx",
          gather_facts: "no",
          serial: "5",
          connection: "ssh",
          become: 1,
          wait_for_connection: "on",
        },
        aws: {
          tool: "shell",
          command: ["./run.sh", "--port", 80],
          working_dir: "/opt",
          env: { DEBUG: 1 },
          backend_config: { bucket: "b" },
          timeout_seconds: 60,
          mock: { outputs: { a: 1 } },
        },
      },
    });
    const fr = specOf(doc, "functionalRequirement");
    assert.equal(fr.asGroup, true);
    assert.equal(fr.outputsFormat, "json");
    assert.deepEqual(fr.outputs, { ip: "instance.ip" });
    assert.deepEqual(fr.secrets, { password: "env:PW" });
    const generic = fr.invocation.generic;
    assert.ok(generic !== undefined);
    assert.equal(generic.tool, "ansible");
    assert.equal(generic.image, "registry/nginx:1");
    assert.equal(generic.beforeCommand, "");
    assert.equal(generic.playbookPath, "/p.yml");
    assert.equal(generic.ansibleRole, "nginx");
    assert.equal(generic.gatherFacts, false);
    assert.equal(generic.serial, 5);
    assert.equal(generic.connection, "ssh");
    assert.equal(generic.become, true);
    assert.equal(generic.waitForConnection, true);
    const aws = fr.invocation.aws;
    assert.ok(aws !== undefined);
    assert.deepEqual(aws.command, ["./run.sh", "--port", "80"]);
    assert.equal(aws.workingDir, "/opt");
    assert.deepEqual(aws.env, { DEBUG: "1" });
    assert.deepEqual(aws.backendConfig, { bucket: "b" });
    assert.equal(aws.timeoutSeconds, 60);
    assert.deepEqual(aws.mock, { outputs: { a: 1 } });
    assert.equal(aws.gatherFacts, undefined, "gather_facts stays unset when absent");
  });

  it("converts a service", () => {
    const svc = specOf(
      convert({
        name: "web",
        type: "service",
        category: "items",
        functional_requirements: ["linux", "nginx"],
        resource_requirements: { memory: "2GB", cpu: 2 },
        params: { port: 80 },
        secrets: { s: "env:S" },
        service_policies: [{ name: "only_create", inputs: { action: "create", count: 2 } }],
      }),
      "service",
    );
    assert.deepEqual(svc.functionalRequirements, ["linux", "nginx"]);
    assert.deepEqual(svc.resourceRequirements, { memory: "2GB", cpu: "2" });
    assert.deepEqual(svc.params, { port: 80 });
    assert.deepEqual(svc.secrets, { s: "env:S" });
    assert.equal(svc.servicePolicies[0]?.name, "only_create");
    assert.deepEqual(svc.servicePolicies[0]?.inputs, { action: "create", count: "2" });
  });

  it("converts a SAT with {name, service} services, policies and stages", () => {
    const sat = specOf(
      convert({
        name: "webshop",
        type: "stack_application_template",
        services: [
          { name: "db", service: "database" },
          { name: "web", service: "web" },
        ],
        policies: { keep_in_location: [{ service: "db", location: "ireland" }] },
        stages: [
          { name: "data", services: ["db"] },
          { name: "app", services: ["web"] },
        ],
      }),
      "stackApplicationTemplate",
    );
    assert.deepEqual(
      sat.services.map((s) => [s.name, s.service]),
      [
        ["db", "database"],
        ["web", "web"],
      ],
    );
    const policy = sat.policies.keep_in_location;
    assert.ok(policy !== undefined);
    assert.deepEqual(toJson(ListValueSchema, policy), [{ service: "db", location: "ireland" }]);
    assert.deepEqual(
      sat.stages.map((s) => [s.name, s.services]),
      [
        ["data", ["db"]],
        ["app", ["web"]],
      ],
    );
  });

  it("accepts pre-0.3 SAT services given as names", () => {
    const sat = specOf(
      convert({ name: "old", type: "stack_application_template", services: ["web", "database"] }),
      "stackApplicationTemplate",
    );
    assert.deepEqual(
      sat.services.map((s) => [s.name, s.service]),
      [
        ["web", "web"],
        ["database", "database"],
      ],
    );
  });

  it("converts a SIT and ignores stale infrastructure_capabilities silently", () => {
    const result = fromStacklObject(
      {
        name: "eu",
        type: "stack_infrastructure_template",
        category: "configs",
        infrastructure_targets: [{ environment: "production", location: "ireland", zone: "eu-west-1-a" }],
        infrastructure_capabilities: { "production.ireland.eu-west-1-a": { provisioning_parameters: { x: 1 } } },
      },
      "doc",
    );
    assert.deepEqual(result.warnings, []);
    const sit = specOf(result.doc!, "stackInfrastructureTemplate");
    assert.deepEqual(
      sit.infrastructureTargets.map((t) => [t.environment, t.location, t.zone]),
      [["production", "ireland", "eu-west-1-a"]],
    );
    assert.deepEqual(sit.targets, []);
  });

  it("converts a policy template", () => {
    const pt = specOf(
      convert({
        name: "keep",
        type: "policy_template",
        category: "configs",
        inputs: ["service", "location"],
        outputs: null,
        policy: "package keep\n",
      }),
      "policyTemplate",
    );
    assert.equal(pt.policy, "package keep\n");
    assert.deepEqual(pt.inputs, ["service", "location"]);
    assert.deepEqual(pt.outputs, []);
  });

  it("warns about unknown fields, legacy packages and a mismatched category", () => {
    const result = fromStacklObject(
      {
        name: "web",
        type: "service",
        category: "configs",
        functional_requirements: ["linux"],
        replicas: 3,
        service_policies: [{ name: "p", inputs: {}, extra: 1 }],
      },
      "services/web.yml#1",
    );
    assert.deepEqual(result.violations, []);
    assert.deepEqual(result.warnings, [
      'services/web.yml#1.category: category "configs" ignored: services are "items" (the type decides)',
      'services/web.yml#1: unknown field "replicas" ignored',
      'services/web.yml#1.service_policies[0]: unknown field "extra" ignored',
    ]);
    const legacy = fromStacklObject({ name: "dev", type: "environment", packages: ["linux"] }, "e");
    assert.deepEqual(legacy.warnings, ["e.packages: packages was removed in STACKL 0.4 and is ignored"]);
    const invocation = fromStacklObject(
      { name: "fr", type: "functional_requirement", invocation: { generic: { tool: "mock", foo: 1 } } },
      "f",
    );
    assert.deepEqual(invocation.warnings, ['f.invocation["generic"]: unknown field "foo" ignored']);
  });

  it("rejects a missing or unknown type", () => {
    const missing = fromStacklObject({ name: "x" }, "d");
    assert.equal(missing.doc, undefined);
    assert.equal(missing.violations[0]?.field, "d.type");
    const unknown = fromStacklObject({ name: "x", type: "packages" }, "d");
    assert.match(unknown.violations[0]?.message ?? "", /unknown type "packages"; expected one of environment, /);
    const instance = fromStacklObject({ name: "x", type: "stack_instance" }, "d");
    assert.match(instance.violations[0]?.message ?? "", /stack instances are not documents/);
  });

  it("reports type errors with exact paths and returns no document", () => {
    const result = fromStacklObject(
      {
        name: "fr",
        type: "functional_requirement",
        params: ["not", "a", "mapping"],
        secrets: { a: { nested: true }, b: null },
        as_group: "perhaps",
        invocation: {
          generic: { tool: "shell", command: "echo hello", serial: 1.5 },
          aws: "tofu",
        },
      },
      "frs.yml#2",
    );
    assert.equal(result.doc, undefined);
    assert.deepEqual(
      result.violations.map((v) => v.field),
      [
        'frs.yml#2.invocation["generic"].serial',
        'frs.yml#2.invocation["generic"].command',
        'frs.yml#2.invocation["aws"]',
        "frs.yml#2.params",
        'frs.yml#2.secrets["a"]',
        'frs.yml#2.secrets["b"]',
        "frs.yml#2.as_group",
      ],
    );
    assert.match(result.violations[1]?.message ?? "", /expected a list of strings \(the argv list/);
    assert.match(result.violations[3]?.message ?? "", /expected a mapping, not a list/);
    const inputs = fromStacklObject(
      { name: "web", type: "service", service_policies: [{ name: "p", inputs: { actions: ["create"] } }] },
      "s",
    );
    assert.deepEqual(
      inputs.violations.map((v) => v.field),
      ['s.service_policies[0].inputs["actions"]'],
    );
    const notMapping = fromStacklObject(["x"], "x");
    assert.equal(notMapping.violations[0]?.field, "x");
  });
});

describe("parseDocumentObject", () => {
  it("detects the format by type: or meta:", () => {
    assert.equal(detectFormat({ type: "zone", name: "z" }), "stackl");
    assert.equal(detectFormat({ meta: { name: "z" }, zone: {} }), "native");
    assert.equal(detectFormat({ meta: {}, type: "zone" }), undefined);
    assert.equal(detectFormat({ name: "z" }), undefined);
    assert.equal(detectFormat("zone"), undefined);
  });

  it("dispatches to either format", () => {
    const stackl = parseDocumentObject({ name: "z", type: "zone" }, "p");
    assert.equal(stackl.format, "stackl");
    assert.equal(stackl.path, "p");
    const native = parseDocumentObject({ meta: { name: "z", labels: { a: "b" } }, zone: { params: { x: 1 } } }, "p");
    assert.equal(native.format, "native");
    assert.ok(native.doc !== undefined && stackl.doc !== undefined);
    assert.equal(native.doc.meta?.labels.a, "b");
    assert.deepEqual(specOf(native.doc, "zone").params, { x: 1 });
  });

  it("explains unrecognised objects", () => {
    assert.match(parseDocumentObject({ name: "z" }, "p").violations[0]?.message ?? "", /expected `type:`/);
    assert.match(parseDocumentObject({ meta: {}, type: "zone" }, "p").violations[0]?.message ?? "", /not both/);
    assert.match(parseDocumentObject([1], "p").violations[0]?.message ?? "", /must be a mapping, not a list/);
  });

  it("reads native documents in camelCase or snake_case and rejects unknown fields", () => {
    const snake = fromNativeObject({ meta: { name: "web" }, service: { functional_requirements: ["linux"] } }, "p");
    const camel = fromNativeObject({ meta: { name: "web" }, service: { functionalRequirements: ["linux"] } }, "p");
    assert.ok(snake.doc !== undefined && camel.doc !== undefined);
    assert.ok(equals(DocumentSchema, snake.doc, camel.doc));
    const bad = fromNativeObject({ meta: { name: "web" }, service: { functional_requirementz: [] } }, "p");
    assert.equal(bad.doc, undefined);
    assert.equal(bad.violations[0]?.field, "p");
  });
});

describe("parseDocumentText", () => {
  it("reads multi-document YAML, numbering documents from 1 and skipping empty ones", () => {
    const text = [
      "# locations",
      "---",
      "name: ireland",
      "type: location",
      "---",
      "# nothing here",
      "---",
      "meta: {name: frankfurt}",
      "location: {agent: fra}",
      "---",
      "",
    ].join("\n");
    const docs = parseDocumentText(text, "locations.yaml");
    assert.deepEqual(
      docs.map((d) => [d.path, d.format, d.doc?.meta?.name]),
      [
        ["locations.yaml#1", "stackl", "ireland"],
        ["locations.yaml#3", "native", "frankfurt"],
      ],
    );
  });

  it("reads JSON files, one document or a list", () => {
    const one = parseDocumentText(
      '{"name": "web", "type": "service", "functional_requirements": ["linux"]}',
      "web.json",
    );
    assert.deepEqual(
      one.map((d) => [d.path, d.doc?.meta?.name]),
      [["web.json#1", "web"]],
    );
    const many = parseDocumentText(
      '[{"name": "a", "type": "zone"}, {"meta": {"name": "b"}, "zone": {}}]',
      "zones.JSON",
    );
    assert.deepEqual(
      many.map((d) => [d.path, d.format]),
      [
        ["zones.JSON#1[0]", "stackl"],
        ["zones.JSON#1[1]", "native"],
      ],
    );
  });

  it("reports syntax errors at the broken document", () => {
    const yaml = parseDocumentText("name: a\ntype: zone\n---\nname: [b\n", "z.yml");
    assert.equal(yaml.length, 2);
    assert.equal(yaml[0]?.doc?.meta?.name, "a");
    assert.equal(yaml[1]?.doc, undefined);
    assert.equal(yaml[1]?.violations[0]?.field, "z.yml#2");
    assert.match(yaml[1]?.violations[0]?.message ?? "", /^invalid YAML: .*line \d+/);
    const dup = parseDocumentText("name: a\nname: b\ntype: zone\n", "d.yml");
    assert.match(dup[0]?.violations[0]?.message ?? "", /invalid YAML: Map keys must be unique/);
    const json = parseDocumentText("{nope", "x.json");
    assert.equal(json[0]?.violations[0]?.field, "x.json#1");
    assert.match(json[0]?.violations[0]?.message ?? "", /^invalid JSON/);
  });

  it("refuses YAML alias bombs instead of expanding them", () => {
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x]",
      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
      "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
      "name: z",
      "type: zone",
    ].join("\n");
    const [parsed] = parseDocumentText(bomb, "bomb.yml");
    assert.equal(parsed?.doc, undefined);
    assert.match(parsed?.violations[0]?.message ?? "", /invalid YAML: Excessive alias count/);
  });

  it("reads STACKL-format YAML with PyYAML's YAML 1.1 scalars", () => {
    const [parsed] = parseDocumentText(
      [
        "name: nginx",
        "type: functional_requirement",
        "params: {a: yes, b: no, c: on, d: off, e: y, f: n, g: 1e3, h: 1.5e+3, i: 2021-06-14, j: 0o17, k: 017, l: '010'}",
        "invocation:",
        "  generic: {tool: ansible, become: yes, gather_facts: No}",
        "outputs: {when: 2021-06-14}",
      ].join("\n"),
      "fr.yml",
    );
    assert.deepEqual(parsed?.violations, []);
    const fr = specOf(parsed!.doc!, "functionalRequirement");
    assert.deepEqual(fr.params, {
      a: true,
      b: false,
      c: true,
      d: false,
      e: "y",
      f: "n",
      g: "1e3",
      h: 1500,
      i: "2021-06-14",
      j: "0o17",
      k: 15,
      l: "010",
    });
    assert.equal(fr.invocation.generic?.become, true);
    assert.equal(fr.invocation.generic?.gatherFacts, false);
    assert.deepEqual(fr.outputs, { when: "2021-06-14" });
  });

  it("reads native-format YAML with YAML 1.2 scalars", () => {
    const [parsed] = parseDocumentText("meta: {name: e}\nenvironment:\n  params: {a: yes, b: 017, c: 0o17}\n", "e.yml");
    assert.deepEqual(specOf(parsed!.doc!, "environment").params, { a: "yes", b: 17, c: 15 });
  });

  it("supports YAML merge keys in STACKL documents, as PyYAML did", () => {
    const [parsed] = parseDocumentText(
      "name: z\ntype: zone\ndefaults: &d {region: eu}\nparams:\n  <<: *d\n  size: 2\n",
      "z.yml",
    );
    assert.deepEqual(specOf(parsed!.doc!, "zone").params, { region: "eu", size: 2 });
    assert.deepEqual(parsed?.warnings, ['z.yml#1: unknown field "defaults" ignored']);
  });
});

describe("toStacklObject", () => {
  it("writes the original format and reads back equal for every kind", () => {
    const objects = [
      {
        name: "production",
        type: "environment",
        category: "configs",
        description: "Production",
        cloud_provider: "aws",
        params: { region: "eu-west-1" },
        secrets: { key: "env:KEY" },
        resources: { memory: "32GB" },
        policies: { allowed_images: { repositories: ["a/"] } },
        tags: { environment: "production" },
        agent: "prod",
        outputs: { x: 1 },
      },
      {
        name: "linux",
        type: "functional_requirement",
        category: "configs",
        description: "",
        invocation: {
          aws: {
            tool: "tofu",
            image: "",
            working_dir: "/opt/tofu",
            backend_config: { bucket: "b" },
            timeout_seconds: 600,
          },
          generic: {
            tool: "ansible",
            image: "img",
            description: "d",
            before_command: "echo",
            playbook_path: "/p.yml",
            ansible_role: "linux",
            gather_facts: false,
            serial: 3,
            connection: "local",
            become: true,
            wait_for_connection: true,
          },
          mock: { tool: "mock", image: "", mock: { fail: true } },
          shell: { tool: "shell", image: "", command: ["./x", "-v"], env: { A: "1" } },
        },
        params: { disk: 40 },
        secrets: { pw: "env:PW" },
        outputs: { ip: "ip" },
        outputs_format: "json",
        as_group: true,
      },
      {
        name: "web",
        type: "service",
        category: "items",
        description: "Web",
        functional_requirements: ["linux", "nginx"],
        resource_requirements: { memory: "2GB" },
        params: { port: 80 },
        secrets: { s: "env:S" },
        service_policies: [{ name: "p", inputs: { a: "b" } }],
      },
      {
        name: "webshop",
        type: "stack_application_template",
        category: "configs",
        description: "",
        services: [{ name: "db", service: "database" }],
        policies: { keep_in_location: [{ service: "db", location: "ireland" }] },
        stages: [{ name: "data", services: ["db"] }],
      },
      {
        name: "eu",
        type: "stack_infrastructure_template",
        category: "configs",
        description: "",
        infrastructure_targets: [{ environment: "production", location: "ireland", zone: "eu-west-1-a" }],
      },
      {
        name: "keep_in_location",
        type: "policy_template",
        category: "configs",
        description: "",
        policy: "package keep_in_location\n",
        inputs: ["service"],
        outputs: ["vm_name"],
        rego_version: "v0",
      },
      { name: "labelled", type: "zone", category: "configs", description: "", labels: { team: "platform" } },
    ];
    for (const obj of objects) {
      const doc = convert(obj);
      assert.deepEqual(toStacklObject(doc), obj, obj.name);
      assert.ok(equals(DocumentSchema, convert(toStacklObject(doc)), doc), obj.name);
    }
  });

  it("always writes the fields the original requires", () => {
    const fr = toStacklObject(
      convert({ name: "f", type: "functional_requirement", invocation: { g: { tool: "mock" } } }),
    );
    assert.deepEqual(fr, {
      name: "f",
      type: "functional_requirement",
      category: "configs",
      description: "",
      invocation: { g: { tool: "mock", image: "" } },
    });
    const pt = toStacklObject(convert({ name: "p", type: "policy_template" }));
    assert.deepEqual(pt, {
      name: "p",
      type: "policy_template",
      category: "configs",
      description: "",
      policy: "",
      inputs: [],
    });
    const svc = toStacklObject(convert({ name: "s", type: "service" }));
    assert.deepEqual(svc.functional_requirements, []);
  });

  it("writes computed SIT targets as infrastructure_capabilities, which reading ignores", () => {
    const doc = convert({
      name: "eu",
      type: "stack_infrastructure_template",
      infrastructure_targets: [{ environment: "p", location: "l", zone: "z" }],
    });
    const sit = specOf(doc, "stackInfrastructureTemplate");
    sit.targets = [
      create(InfrastructureTargetSchema, {
        key: "p.l.z",
        environment: "p",
        location: "l",
        zone: "z",
        params: { a: 1 },
        cloudProvider: "generic",
        agent: "common",
        tags: { t: "1" },
        resources: { memory: "1GB" },
      }),
    ];
    const out = toStacklObject(doc);
    assert.deepEqual(out.infrastructure_capabilities, {
      "p.l.z": {
        provisioning_parameters: { a: 1 },
        cloud_provider: "generic",
        secrets: {},
        resources: { memory: "1GB" },
        policies: {},
        agent: "common",
        tags: { t: "1" },
      },
    });
    const back = fromStacklObject(out, "x");
    assert.deepEqual(back.warnings, []);
    assert.deepEqual(specOf(back.doc!, "stackInfrastructureTemplate").targets, []);
  });

  it("produces documents that validate", () => {
    const doc = convert({ name: "web", type: "service", functional_requirements: ["linux"] });
    assert.deepEqual(validateDocument(convert(toStacklObject(doc)), "d"), []);
  });
});
