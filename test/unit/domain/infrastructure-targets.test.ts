import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import type { InfrastructureLayer, StackInfrastructureTemplate } from "../../../gen/stackl/v1/documents_pb.js";
import { InfrastructureLayerSchema, StackInfrastructureTemplateSchema } from "../../../gen/stackl/v1/documents_pb.js";
import type { InfrastructureLayers } from "../../../src/domain/infrastructure-targets.js";
import {
  computeTargets,
  DEFAULT_AGENT,
  DEFAULT_CLOUD_PROVIDER,
  targetKey,
} from "../../../src/domain/infrastructure-targets.js";

type LayerInit = Parameters<typeof create<typeof InfrastructureLayerSchema>>[1];

function layers(init: {
  environment?: Record<string, LayerInit>;
  location?: Record<string, LayerInit>;
  zone?: Record<string, LayerInit>;
}): InfrastructureLayers {
  const lookup =
    (table: Record<string, LayerInit> = {}) =>
    (name: string): InfrastructureLayer | undefined =>
      Object.hasOwn(table, name) ? create(InfrastructureLayerSchema, table[name]) : undefined;
  return { environment: lookup(init.environment), location: lookup(init.location), zone: lookup(init.zone) };
}

function sitOf(...keys: string[]): StackInfrastructureTemplate {
  return create(StackInfrastructureTemplateSchema, {
    infrastructureTargets: keys.map((key) => {
      const [environment = "", location = "", zone = ""] = key.split(".");
      return { environment, location, zone };
    }),
  });
}

function single(env: LayerInit, loc: LayerInit, zn: LayerInit) {
  const { targets, violations } = computeTargets(
    sitOf("e.l.z"),
    layers({ environment: { e: env }, location: { l: loc }, zone: { z: zn } }),
  );
  assert.deepEqual(violations, []);
  assert.equal(targets.length, 1);
  const target = targets[0];
  assert.ok(target !== undefined);
  return target;
}

describe("computeTargets", () => {
  it("merges params zone over location over environment, shallowly by key", () => {
    const target = single(
      { params: { a: "env", b: "env", c: "env", nested: { x: 1, y: 1 } } },
      { params: { b: "loc", c: "loc", nested: { x: 2 } } },
      { params: { c: "zone", d: "zone" } },
    );
    assert.deepEqual(target.params, { a: "env", b: "loc", c: "zone", d: "zone", nested: { x: 2 } });
  });

  it("merges secrets and tags zone over location over environment", () => {
    const target = single(
      { secrets: { key: "env:ENV_KEY", token: "env:ENV_TOKEN" }, tags: { environment: "production", tier: "gold" } },
      { secrets: { token: "env:LOC_TOKEN" }, tags: { region: "eu-west", tier: "silver" } },
      { secrets: { key: "env:ZONE_KEY" }, tags: { tier: "platinum" } },
    );
    assert.deepEqual(target.secrets, { key: "env:ZONE_KEY", token: "env:LOC_TOKEN" });
    assert.deepEqual(target.tags, { environment: "production", region: "eu-west", tier: "platinum" });
  });

  it("merges policies by name: the nearest layer's parameters replace the others whole", () => {
    const target = single(
      { policies: { allowed_images: { repositories: ["a/", "b/"], strict: true }, env_only: { x: 1 } } },
      { policies: { allowed_images: { repositories: ["a/"] }, loc_only: {} } },
      {},
    );
    assert.deepEqual(target.policies, {
      allowed_images: { repositories: ["a/"] },
      env_only: { x: 1 },
      loc_only: {},
    });
    const zoneWins = single(
      { policies: { p: { v: "env" } } },
      { policies: { p: { v: "loc" } } },
      { policies: { p: { v: "zone" } } },
    );
    assert.deepEqual(zoneWins.policies, { p: { v: "zone" } });
  });

  it("takes cloud_provider and agent from the first non-empty of zone, location, environment", () => {
    const all = single(
      { cloudProvider: "aws", agent: "env-agent" },
      { cloudProvider: "vmw", agent: "loc-agent" },
      { cloudProvider: "gcp", agent: "zone-agent" },
    );
    assert.equal(all.cloudProvider, "gcp");
    assert.equal(all.agent, "zone-agent");
    const fromLocation = single(
      { cloudProvider: "aws", agent: "env-agent" },
      { cloudProvider: "vmw", agent: "loc-agent" },
      {},
    );
    assert.equal(fromLocation.cloudProvider, "vmw");
    assert.equal(fromLocation.agent, "loc-agent");
    const fromEnvironment = single({ cloudProvider: "aws", agent: "env-agent" }, {}, {});
    assert.equal(fromEnvironment.cloudProvider, "aws");
    assert.equal(fromEnvironment.agent, "env-agent");
    const mixed = single({ cloudProvider: "aws" }, { agent: "loc-agent" }, {});
    assert.equal(mixed.cloudProvider, "aws");
    assert.equal(mixed.agent, "loc-agent");
  });

  it("defaults cloud_provider to generic and agent to common", () => {
    const target = single({}, {}, {});
    assert.equal(target.cloudProvider, DEFAULT_CLOUD_PROVIDER);
    assert.equal(target.cloudProvider, "generic");
    assert.equal(target.agent, DEFAULT_AGENT);
    assert.equal(target.agent, "common");
    assert.deepEqual(target.params, {});
    assert.deepEqual(target.secrets, {});
    assert.deepEqual(target.tags, {});
    assert.deepEqual(target.policies, {});
    assert.deepEqual(target.resources, {});
  });

  it("uses the environment's resources only", () => {
    const target = single(
      { resources: { memory: "32GB", cpu: "8" } },
      { resources: { memory: "64GB", disk: "1TB" } },
      { resources: { memory: "128GB" } },
    );
    assert.deepEqual(target.resources, { memory: "32GB", cpu: "8" });
    const none = single({}, { resources: { memory: "64GB" } }, { resources: { memory: "128GB" } });
    assert.deepEqual(none.resources, {});
  });

  it("keys targets env.loc.zone, sorts them by key and drops repeated references", () => {
    const { targets, violations } = computeTargets(
      sitOf("prod.ireland.b", "dev.lab.rack-1", "prod.frankfurt.a", "prod.ireland.a", "prod.ireland.b"),
      layers({
        environment: { prod: {}, dev: {} },
        location: { ireland: {}, frankfurt: {}, lab: {} },
        zone: { a: {}, b: {}, "rack-1": {} },
      }),
    );
    assert.deepEqual(violations, []);
    assert.deepEqual(
      targets.map((t) => t.key),
      ["dev.lab.rack-1", "prod.frankfurt.a", "prod.ireland.a", "prod.ireland.b"],
    );
    const first = targets[0];
    assert.equal(first?.environment, "dev");
    assert.equal(first?.location, "lab");
    assert.equal(first?.zone, "rack-1");
    assert.equal(targetKey({ environment: "e", location: "l", zone: "z" }), "e.l.z");
  });

  it("reports each missing layer at its field and skips that target", () => {
    const { targets, violations } = computeTargets(
      sitOf("prod.ireland.a", "prod.mars.b", "staging.ireland.c"),
      layers({ environment: { prod: {} }, location: { ireland: {} }, zone: { a: {}, b: {} } }),
    );
    assert.deepEqual(
      targets.map((t) => t.key),
      ["prod.ireland.a"],
    );
    assert.deepEqual(violations, [
      {
        field: "stack_infrastructure_template.infrastructure_targets[1].location",
        message: 'location "mars" does not exist',
      },
      {
        field: "stack_infrastructure_template.infrastructure_targets[2].environment",
        message: 'environment "staging" does not exist',
      },
      { field: "stack_infrastructure_template.infrastructure_targets[2].zone", message: 'zone "c" does not exist' },
    ]);
    const custom = computeTargets(sitOf("x.y.z"), layers({}), "documents[4].stack_infrastructure_template");
    assert.equal(
      custom.violations[0]?.field,
      "documents[4].stack_infrastructure_template.infrastructure_targets[0].environment",
    );
  });

  it("never aliases the layer documents", () => {
    const env = create(InfrastructureLayerSchema, { params: { nested: { x: 1 } }, policies: { p: { v: 1 } } });
    const empty = create(InfrastructureLayerSchema, {});
    const { targets } = computeTargets(sitOf("e.l.z"), {
      environment: () => env,
      location: () => empty,
      zone: () => empty,
    });
    const target = targets[0];
    assert.ok(target?.params !== undefined);
    (target.params.nested as { x: number }).x = 2;
    (target.policies.p as { v: number }).v = 2;
    assert.deepEqual(env.params, { nested: { x: 1 } });
    assert.deepEqual(env.policies, { p: { v: 1 } });
  });
});
