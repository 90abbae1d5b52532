/** The STACKL-format fixture tree loads unchanged, validates, resolves, round-trips and merges as the original. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { equals, fromJson, toJson } from "@bufbuild/protobuf";
import { parseAllDocuments } from "yaml";
import type { Document, InfrastructureLayer, InfrastructureTarget } from "../../../gen/stackl/v1/documents_pb.js";
import { DocumentSchema } from "../../../gen/stackl/v1/documents_pb.js";
import type { DocumentKind } from "../../../src/domain/document-kinds.js";
import { kindOf } from "../../../src/domain/document-kinds.js";
import { unresolvedReferences } from "../../../src/domain/document-references.js";
import { computeTargets } from "../../../src/domain/infrastructure-targets.js";
import { fromNativeObject, fromStacklObject, toStacklObject } from "../../../src/domain/stackl-format.js";
import { validateBatch, validateDocument } from "../../../src/domain/validate-document.js";
import { loadStacklTree, stacklTreeDir, stacklTreeFiles } from "../../fixtures/stackl-tree.js";

const parsed = loadStacklTree();
const docs: Document[] = parsed.map((p) => {
  assert.ok(p.doc !== undefined, `${p.path}: ${JSON.stringify(p.violations)}`);
  return p.doc;
});

function find(kind: DocumentKind, name: string): Document {
  const doc = docs.find((d) => kindOf(d) === kind && d.meta?.name === name);
  assert.ok(doc !== undefined, `${kind} ${name}`);
  return doc;
}

function layer(kind: "environment" | "location" | "zone") {
  return (name: string): InfrastructureLayer | undefined => {
    const doc = docs.find((d) => d.spec.case === kind && d.meta?.name === name);
    return doc?.spec.case === kind ? doc.spec.value : undefined;
  };
}

/** Scalars as strings, empty strings/maps/lists and nulls dropped: equality "for the fields we keep". */
function normalise(value: unknown): unknown {
  if (value === null || value === undefined) return undefined;
  if (Array.isArray(value)) return value.map(normalise);
  if (typeof value === "object") {
    const entries = Object.entries(value)
      .map(([k, v]) => [k, normalise(v)] as const)
      .filter(([, v]) => !isEmpty(v))
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return Object.fromEntries(entries);
  }
  return String(value);
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === "") return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === "object" && value !== null && Object.keys(value).length === 0;
}

describe("the STACKL fixture tree", () => {
  it("holds YAML, multi-document YAML and JSON files in per-kind folders", () => {
    const files = stacklTreeFiles();
    assert.ok(files.some((f) => f.endsWith(".json")));
    assert.ok(
      parsed.some((p) => p.path.endsWith("#2")),
      "a multi-document YAML file",
    );
    for (const folder of [
      "environments/",
      "locations/",
      "zones/",
      "functional_requirements/",
      "services/",
      "stack_application_templates/",
      "stack_infrastructure_templates/",
      "policy_templates/",
    ]) {
      assert.ok(
        files.some((f) => f.startsWith(folder)),
        folder,
      );
    }
  });

  it("parses with zero violations and zero warnings, all in the STACKL format", () => {
    for (const p of parsed) {
      assert.deepEqual(p.violations, [], p.path);
      assert.deepEqual(p.warnings, [], p.path);
      assert.equal(p.format, "stackl", p.path);
    }
    const counts = new Map<string, number>();
    for (const doc of docs) counts.set(kindOf(doc) ?? "none", (counts.get(kindOf(doc) ?? "none") ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(counts), {
      environment: 2,
      location: 3,
      zone: 4,
      functional_requirement: 5,
      service: 4,
      stack_application_template: 1,
      stack_infrastructure_template: 1,
      policy_template: 2,
    });
  });

  it("validates with zero violations, per document and as one batch", () => {
    for (const p of parsed) assert.deepEqual(validateDocument(p.doc!, p.path), [], p.path);
    assert.deepEqual(validateBatch(docs), []);
  });

  it("resolves every reference inside the tree", () => {
    const names = new Set(docs.map((d) => `${kindOf(d)}/${d.meta?.name}`));
    for (const p of parsed) {
      assert.deepEqual(
        unresolvedReferences(p.doc!, p.path, (kind, name) => names.has(`${kind}/${name}`)),
        [],
        p.path,
      );
    }
  });

  it("round-trips every document through toStacklObject", () => {
    for (const p of parsed) {
      const [file, index] = p.path.split("#");
      const text = readFileSync(join(stacklTreeDir, file ?? ""), "utf8");
      const original = sourceObject(text, file ?? "", Number(index));
      const out = toStacklObject(p.doc!);
      const { infrastructure_capabilities: _stale, ...kept } = original;
      assert.deepEqual(normalise(out), normalise(kept), p.path);
      const again = fromStacklObject(out, p.path);
      assert.deepEqual(again.violations, []);
      assert.ok(equals(DocumentSchema, again.doc!, p.doc!), p.path);
    }
  });

  it("round-trips every document through the native format", () => {
    for (const doc of docs) {
      const json = toJson(DocumentSchema, doc);
      const back = fromNativeObject(json, "x");
      assert.deepEqual(back.violations, []);
      assert.ok(equals(DocumentSchema, back.doc!, doc));
      assert.ok(
        equals(DocumentSchema, fromJson(DocumentSchema, toJson(DocumentSchema, doc, { useProtoFieldName: true })), doc),
      );
    }
  });

  it("keeps the YAML 1.1 and coercion semantics of the original loader", () => {
    const development = find("environment", "development");
    assert.equal(development.spec.case, "environment");
    assert.equal(development.spec.value.params?.backup_enabled, false, "`no` is false in YAML 1.1");
    const production = find("environment", "production");
    assert.equal(production.spec.case, "environment");
    assert.equal(production.spec.value.resources.cpu, "32", "numbers in resources become strings");
    const nginx = find("functional_requirement", "nginx");
    assert.equal(nginx.spec.case, "functionalRequirement");
    assert.equal(nginx.spec.value.invocation.generic?.become, true);
    assert.equal(nginx.spec.value.invocation.generic?.gatherFacts, true);
    const web = find("service", "web");
    assert.equal(web.spec.case, "service");
    assert.deepEqual(web.spec.value.resourceRequirements, { memory: "2GB", cpu: "2" });
    const sit = find("stack_infrastructure_template", "eu-platform");
    assert.equal(sit.spec.case, "stackInfrastructureTemplate");
    assert.deepEqual(sit.spec.value.targets, [], "stale infrastructure_capabilities are not loaded");
  });

  it("computes the SIT's targets exactly as the original merge", () => {
    const sit = find("stack_infrastructure_template", "eu-platform");
    assert.equal(sit.spec.case, "stackInfrastructureTemplate");
    const { targets, violations } = computeTargets(sit.spec.value, {
      environment: layer("environment"),
      location: layer("location"),
      zone: layer("zone"),
    });
    assert.deepEqual(violations, []);
    assert.deepEqual(
      targets.map((t) => t.key),
      [
        "development.lab.lab-rack-1",
        "production.frankfurt.eu-central-1-a",
        "production.ireland.eu-west-1-a",
        "production.ireland.eu-west-1-b",
      ],
    );
    const byKey = new Map<string, InfrastructureTarget>(targets.map((t) => [t.key, t]));
    const lab = byKey.get("development.lab.lab-rack-1");
    assert.equal(lab?.cloudProvider, "vmw");
    assert.equal(lab?.agent, "lab-agent");
    assert.deepEqual(lab?.params, {
      dns_domain: "dev.shop.internal",
      instance_type: "medium",
      backup_enabled: false,
      vsphere_datacenter: "LAB-DC",
      vsphere_server: "vcenter.lab.internal",
      vsphere_cluster: "rack1",
      vsphere_datastore: "ds-rack1",
    });
    assert.deepEqual(lab?.resources, { memory: "16GB", cpu: "8" });
    assert.deepEqual(lab?.tags, { environment: "development", tier: "bronze", region: "on-prem", rack: "1" });
    assert.deepEqual(lab?.policies, {});

    const fra = byKey.get("production.frankfurt.eu-central-1-a");
    assert.equal(fra?.cloudProvider, "aws");
    assert.equal(fra?.agent, "frankfurt-agents");
    assert.equal(fra?.params?.instance_type, "m6i.large");
    assert.equal(fra?.params?.aws_region, "eu-central-1");
    assert.deepEqual(fra?.secrets, {
      aws_access_key: "env:FRA_AWS_ACCESS_KEY",
      aws_secret_key: "env:FRA_AWS_SECRET_KEY",
    });
    assert.deepEqual(fra?.policies, { allowed_images: { repositories: ["registry.example.com/"] } });

    const a = byKey.get("production.ireland.eu-west-1-a");
    assert.equal(a?.agent, "prod-agents");
    assert.equal(a?.params?.instance_type, "m5.large");
    assert.deepEqual(a?.policies, { allowed_images: { repositories: ["registry.example.com/", "ghcr.io/example/"] } });
    assert.deepEqual(a?.secrets, {
      aws_access_key: "env:PROD_AWS_ACCESS_KEY",
      aws_secret_key: "env:PROD_AWS_SECRET_KEY",
    });

    const b = byKey.get("production.ireland.eu-west-1-b");
    assert.equal(b?.agent, "prod-agents-b");
    assert.equal(b?.cloudProvider, "aws");
    assert.equal(b?.params?.instance_type, "m5.xlarge");
    assert.deepEqual(b?.resources, { memory: "64GB", cpu: "32", disk: "2TB" }, "the zone's 128GB is ignored");
    assert.deepEqual(b?.tags, { environment: "production", tier: "platinum", region: "eu-west", az: "b" });
  });
});

/** The raw object of document `index` (1-based) of a fixture file, read independently of the converter. */
function sourceObject(text: string, file: string, index: number): Record<string, unknown> {
  if (file.endsWith(".json")) return JSON.parse(text) as Record<string, unknown>;
  const doc = parseAllDocuments(text, { version: "1.1" })[index - 1];
  assert.ok(doc !== undefined, `${file}#${index}`);
  return doc.toJS() as Record<string, unknown>;
}
