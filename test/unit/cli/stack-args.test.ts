// Arguments and manifests of the stack-instance commands (`plan`, `create instance`, `update instance`,
// `apply -c MANIFEST NAME`): option values, `@file`, the original manifest format, and the spec they build.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Command, InvalidArgumentError } from "commander";
import { StackInstanceSchema, StackInstanceSpecSchema } from "../../../gen/stackl/v1/stack_instances_pb.js";
import {
  addSpecOptions,
  emptyInput,
  formatManifestProblem,
  type InstanceOptionValues,
  inputFromOptions,
  mergeInput,
  parseManifest,
  parseParamArgument,
  parseReplicasArgument,
  parseSecretArgument,
  parseServiceArgument,
  parseServiceParamArgument,
  parseServiceSecretArgument,
  parseStageArgument,
  parseTagsArgument,
  parseValue,
  readManifest,
  specOf,
} from "../../../src/cli/commands/instance.js";
import { desiredServices } from "../../../src/cli/commands/update.js";

let dir: string;
const file = (name: string): string => path.join(dir, name);

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "stackl-stack-args-"));
  await writeFile(file("vars.yaml"), "region: eu-west-1\nsizes: [1, 2]\nport: 0080\nenabled: yes\n");
  await writeFile(file("vars.json"), '{"region": "eu-central-1", "count": 3}');
  await writeFile(file("key.pem"), "-----BEGIN KEY-----\nabc\n");
  await writeFile(file("list.yaml"), "- a\n- b\n");
  await writeFile(file("bad.yaml"), "a: [1, 2\n");
  await writeFile(file("services.yaml"), "- name: cache\n  service: redis\n- search\n");
});
after(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** The InvalidArgumentError message of `fn`, failing when it does not throw one. */
function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    return err.message;
  }
  assert.fail("expected an error");
}

describe("parameter values (-p key=value)", () => {
  it("types JSON values and keeps everything else a string", () => {
    assert.equal(parseValue("8080"), 8080);
    assert.equal(parseValue("-1.5"), -1.5);
    assert.equal(parseValue("true"), true);
    assert.equal(parseValue("false"), false);
    assert.equal(parseValue("null"), null);
    assert.equal(parseValue('"007"'), "007");
    assert.deepEqual(parseValue("[1, 2]"), [1, 2]);
    assert.deepEqual(parseValue('{"a": {"b": 1}}'), { a: { b: 1 } });
    // Not JSON: stays text (leading zeros, versions, YAML 1.1 booleans, free text with spaces and `=`).
    assert.equal(parseValue("0080"), "0080");
    assert.equal(parseValue("2.4.1"), "2.4.1");
    assert.equal(parseValue("yes"), "yes");
    assert.equal(parseValue("a=b c"), "a=b c");
    assert.equal(parseValue(""), "");
    assert.equal(parseValue(" spaced "), " spaced ");
  });

  it("reads YAML flow collections", () => {
    assert.deepEqual(parseValue("[a, b]"), ["a", "b"]);
    assert.deepEqual(parseValue("{a: 1, b: [x]}"), { a: 1, b: ["x"] });
    assert.match(
      usageError(() => parseValue("[a, b")),
      /invalid YAML/,
    );
  });

  it("reads @file: YAML/JSON content for .yaml/.yml/.json, text otherwise, @@ for a literal @", () => {
    assert.deepEqual(parseValue(`@${file("vars.json")}`), { region: "eu-central-1", count: 3 });
    assert.deepEqual(parseValue(`@${file("list.yaml")}`), ["a", "b"]);
    assert.equal(parseValue(`@${file("key.pem")}`), "-----BEGIN KEY-----\nabc\n");
    assert.equal(parseValue("@@handle"), "@handle");
    assert.match(
      usageError(() => parseValue(`@${file("missing.yaml")}`)),
      /missing\.yaml: no such file/,
    );
    assert.match(
      usageError(() => parseValue("@")),
      /file name/,
    );
  });

  it("accumulates -p key=value, key=@file, @file.yaml and JSON objects; later values win", () => {
    let params = parseParamArgument("port=8080");
    params = parseParamArgument("name=web server", params);
    params = parseParamArgument("empty=", params);
    params = parseParamArgument(`cert=@${file("key.pem")}`, params);
    params = parseParamArgument(`@${file("vars.yaml")}`, params);
    params = parseParamArgument('{"port": 9090, "tags": ["x"]}', params);
    params = parseParamArgument("{debug: true}", params);
    assert.deepEqual(params, {
      port: 9090,
      name: "web server",
      empty: "",
      cert: "-----BEGIN KEY-----\nabc\n",
      region: "eu-west-1",
      sizes: [1, 2],
      enabled: "yes",
      tags: ["x"],
      debug: true,
    });
    // Parameter files are YAML 1.2: `0080` is the number 80, `yes` a string.
    assert.deepEqual(parseParamArgument(`@${file("vars.yaml")}`), {
      region: "eu-west-1",
      sizes: [1, 2],
      port: 80,
      enabled: "yes",
    });
  });

  it("rejects malformed parameters with the reason", () => {
    assert.match(
      usageError(() => parseParamArgument("novalue")),
      /expected key=value, @file or a JSON object, got "novalue"/,
    );
    assert.match(
      usageError(() => parseParamArgument("=x")),
      /expected key=value/,
    );
    assert.match(
      usageError(() => parseParamArgument(`@${file("list.yaml")}`)),
      /list\.yaml: expected a mapping, got a list/,
    );
    assert.match(
      usageError(() => parseParamArgument(`@${file("bad.yaml")}`)),
      /bad\.yaml: invalid YAML/,
    );
    assert.match(
      usageError(() => parseParamArgument("[1, 2]")),
      /expected key=value/,
    );
  });
});

describe("other option values", () => {
  it("--tags: pairs, comma-separated, or a mapping with values as strings", () => {
    let tags = parseTagsArgument("environment=production,tier=gold");
    tags = parseTagsArgument('{"team": "shop", "level": 3, "on": true}', tags);
    assert.deepEqual(tags, { environment: "production", tier: "gold", team: "shop", level: "3", on: "true" });
    assert.match(
      usageError(() => parseTagsArgument("environment")),
      /expected key=value/,
    );
    assert.match(
      usageError(() => parseTagsArgument('{"a": [1]}')),
      /tag "a": expected a string, got a list/,
    );
  });

  it("--replicas: alias=N with positive integers", () => {
    let replicas = parseReplicasArgument("web=2,db=1");
    replicas = parseReplicasArgument('{"lb": "3"}', replicas);
    assert.deepEqual(replicas, { web: 2, db: 1, lb: 3 });
    assert.match(
      usageError(() => parseReplicasArgument("web=two")),
      /replicas of web: expected a positive integer/,
    );
    assert.match(
      usageError(() => parseReplicasArgument("web=0")),
      /positive integer/,
    );
    assert.match(
      usageError(() => parseReplicasArgument("web=1.5")),
      /positive integer/,
    );
  });

  it("--secret: references, never empty", () => {
    let secrets = parseSecretArgument("db_password=vault:kv/shop#db");
    secrets = parseSecretArgument('{"api_key": "env:API_KEY"}', secrets);
    assert.deepEqual(secrets, { db_password: "vault:kv/shop#db", api_key: "env:API_KEY" });
    assert.match(
      usageError(() => parseSecretArgument("x=")),
      /secret "x": the reference is empty/,
    );
  });

  it("--service: alias=service, a bare name, a list; replaced by alias", () => {
    let services = parseServiceArgument("cache=redis");
    services = parseServiceArgument("search", services);
    services = parseServiceArgument("cache=memcached", services);
    services = parseServiceArgument('[{"name": "queue", "service": "rabbitmq"}]', services);
    services = parseServiceArgument(`@${file("services.yaml")}`, services);
    assert.deepEqual(services, [
      { name: "cache", service: "redis" },
      { name: "search", service: "search" },
      { name: "queue", service: "rabbitmq" },
    ]);
    assert.match(
      usageError(() => parseServiceArgument("cache=")),
      /the service is empty/,
    );
    assert.match(
      usageError(() => parseServiceArgument('[{"service": "x"}]')),
      /services\[0\]\.name: is required/,
    );
  });

  it("--stage: ordered, a repeated name replaces the stage", () => {
    let stages = parseStageArgument("data=db");
    stages = parseStageArgument("app=web, monitoring", stages);
    stages = parseStageArgument("data=db,cache", stages);
    assert.deepEqual(stages, [
      { name: "app", services: ["web", "monitoring"] },
      { name: "data", services: ["db", "cache"] },
    ]);
    assert.match(
      usageError(() => parseStageArgument("data=")),
      /stage "data": no services listed/,
    );
    assert.match(
      usageError(() => parseStageArgument("data")),
      /expected name=alias,alias/,
    );
  });

  it("--service-param / --service-secret: alias.key=value, alias=@file, mappings; merged per alias", () => {
    let sp = parseServiceParamArgument("web.port=8080");
    sp = parseServiceParamArgument("web.name=shop", sp);
    sp = parseServiceParamArgument(`db=@${file("vars.json")}`, sp);
    sp = parseServiceParamArgument('{"web": {"port": 80}}', sp);
    assert.deepEqual(sp, { web: { port: 80, name: "shop" }, db: { region: "eu-central-1", count: 3 } });
    assert.match(
      usageError(() => parseServiceParamArgument("web=1")),
      /alias\.key=value or alias=@file/,
    );
    assert.match(
      usageError(() => parseServiceParamArgument('{"web": 1}')),
      /service params of "web": expected a mapping/,
    );

    let ss = parseServiceSecretArgument("db.password=vault:kv/db");
    ss = parseServiceSecretArgument('{"db": {"user": "vault:kv/user"}}', ss);
    assert.deepEqual(ss, { db: { password: "vault:kv/db", user: "vault:kv/user" } });
    assert.match(
      usageError(() => parseServiceSecretArgument("db=x")),
      /alias\.key=reference/,
    );
  });

  it("commander: options accumulate, hidden original spellings merge, bad values are usage errors", async () => {
    const command = addSpecOptions(new Command("x").exitOverride().configureOutput({ writeErr: () => {} }));
    command.parse(
      [
        "-p",
        "a=1",
        "--params",
        "b=x",
        "-t",
        "env=prod",
        "-r",
        "web=2",
        "--service",
        "cache=redis",
        "--services",
        '[{"name":"q","service":"rabbit"}]',
        "--stage",
        "s1=db",
        "--secret",
        "k=ref",
        "--secrets",
        '{"k2":"ref2"}',
        "-e",
        "web.port=80",
        "--service-params",
        '{"db":{"size":1}}',
        "--service-secret",
        "db.pw=ref",
      ],
      { from: "user" },
    );
    const input = inputFromOptions(command.opts<InstanceOptionValues>());
    assert.deepEqual(input, {
      params: { a: 1, b: "x" },
      secrets: { k2: "ref2", k: "ref" },
      serviceParams: { db: { size: 1 }, web: { port: 80 } },
      serviceSecrets: { db: { pw: "ref" } },
      tags: { env: "prod" },
      replicas: { web: 2 },
      services: [
        { name: "q", service: "rabbit" },
        { name: "cache", service: "redis" },
      ],
      stages: [{ name: "s1", services: ["db"] }],
    });
    const bad = addSpecOptions(new Command("x").exitOverride().configureOutput({ writeErr: () => {} }));
    assert.throws(() => bad.parse(["-r", "web=none"], { from: "user" }), /expected a positive integer/);
  });
});

describe("the original manifest (apply -c)", () => {
  const ORIGINAL = [
    "stack_infrastructure_template: eu-platform",
    "stack_application_template: webshop",
    "params:",
    "  app_version: 2.4.1",
    "  debug: yes          # PyYAML: a boolean",
    "  nginx_port: 8080",
    "  created: 2021-06-14 # PyYAML keeps timestamps as strings",
    "secrets:",
    "  db_password: vault:kv/shop#db",
    "service_params:",
    "  web:",
    "    workers: 4",
    "service_secrets:",
    "  db:",
    "    replication: vault:kv/shop#repl",
    "replicas:",
    "  web: 2",
    "tags:",
    "  environment: production",
    "  tier: 1",
    "services:",
    "  - name: cache",
    "    service: redis",
    "stages:",
    "  - name: data",
    "    services: [db, cache]",
    "  - name: app",
    "    services: [web]",
    "",
  ].join("\n");

  it("reads every key of the original format, with PyYAML scalars", () => {
    const result = parseManifest(ORIGINAL, "shop.yaml");
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.warnings, []);
    assert.deepEqual(result.manifest, {
      sat: "webshop",
      sit: "eu-platform",
      input: {
        params: { app_version: "2.4.1", debug: true, nginx_port: 8080, created: "2021-06-14" },
        secrets: { db_password: "vault:kv/shop#db" },
        serviceParams: { web: { workers: 4 } },
        serviceSecrets: { db: { replication: "vault:kv/shop#repl" } },
        tags: { environment: "production", tier: "1" },
        replicas: { web: 2 },
        services: [{ name: "cache", service: "redis" }],
        stages: [
          { name: "data", services: ["db", "cache"] },
          { name: "app", services: ["web"] },
        ],
      },
    });
  });

  it("reads JSON manifests, a name, bare service names; a manifest with only templates is fine", () => {
    const json = parseManifest(
      '{"stack_infrastructure_template": "sit", "stack_application_template": "sat", "name": "shop", "services": ["search"]}',
      "m.json",
    );
    assert.deepEqual(json.problems, []);
    assert.equal(json.manifest?.name, "shop");
    assert.deepEqual(json.manifest?.input.services, [{ name: "search", service: "search" }]);
    assert.deepEqual(json.manifest?.input.params, {});
    const named = parseManifest("stack_instance_name: shop2\nparams: {}\n", "m.yaml");
    assert.equal(named.manifest?.name, "shop2");
    assert.equal(named.manifest?.sat, undefined);
  });

  it("reports every problem with its field path, and warns about unknown keys", () => {
    const result = parseManifest(
      [
        "stack_application_template: [webshop]",
        "params: [a]",
        "secrets: {db: {nested: 1}}",
        "service_params: {web: 3}",
        "replicas: {web: two, db: 0}",
        "tags: {env: [x]}",
        "services:",
        "  - {service: redis}",
        "  - name: cache",
        "    service: 7",
        "  - 42",
        "stages:",
        "  - name: data",
        "  - services: [db, 3]",
        "replica: {web: 2}",
        "",
      ].join("\n"),
      "bad.yaml",
    );
    assert.equal(result.manifest, undefined);
    assert.deepEqual(
      result.problems.map((p) => formatManifestProblem("bad.yaml", p)),
      [
        "bad.yaml: stack_application_template: expected a name, got a list",
        "bad.yaml: params: expected a mapping, got a list",
        "bad.yaml: secrets.db: expected a string, got a mapping",
        "bad.yaml: service_params.web: expected a mapping, got number 3",
        'bad.yaml: replicas.web: expected a positive integer, got string "two"',
        "bad.yaml: replicas.db: expected a positive integer, got number 0",
        "bad.yaml: tags.env: expected a string, got a list",
        "bad.yaml: services[0].name: is required",
        "bad.yaml: services[1].service: expected a service name, got number 7",
        "bad.yaml: services[2]: expected {name, service}, got number 42",
        "bad.yaml: stages[0].services: is required",
        "bad.yaml: stages[1].name: is required",
        "bad.yaml: stages[1].services[1]: expected an alias, got number 3",
      ],
    );
    assert.equal(result.warnings.length, 1);
    assert.match(result.warnings[0] ?? "", /^replica: unknown key, ignored/);
  });

  it("refuses empty files, non-mappings, several documents and broken YAML", () => {
    assert.deepEqual(parseManifest("# nothing\n", "m.yaml").problems, [
      { field: "", message: "the manifest is empty" },
    ]);
    assert.deepEqual(parseManifest("- a\n", "m.yaml").problems, [
      { field: "", message: "expected a mapping, got a list" },
    ]);
    assert.match(parseManifest("a: 1\n---\nb: 2\n", "m.yaml").problems[0]?.message ?? "", /several YAML documents/);
    assert.match(parseManifest("a: [1\n", "m.yaml").problems[0]?.message ?? "", /^invalid YAML/);
    assert.match(parseManifest("{", "m.json").problems[0]?.message ?? "", /^invalid JSON/);
    assert.deepEqual(readManifest(file("nope.yaml")).problems, [{ field: "", message: "no such file" }]);
    assert.equal(readManifest("-", "stack_application_template: sat\n").manifest?.sat, "sat");
  });

  it("command-line options override the manifest as the original CLI did", () => {
    const manifest = parseManifest(ORIGINAL, "shop.yaml").manifest;
    assert.ok(manifest);
    const over = {
      ...emptyInput(),
      params: { app_version: "2.5.0", extra: 1 },
      serviceParams: { web: { threads: 2 } },
      serviceSecrets: { db: { admin: "vault:kv/admin" } },
      replicas: { web: 3 },
      tags: { tier: "2" },
      services: [
        { name: "cache", service: "memcached" },
        { name: "search", service: "elastic" },
      ],
    };
    const merged = mergeInput(manifest.input, over);
    assert.deepEqual(merged.params, {
      app_version: "2.5.0",
      debug: true,
      nginx_port: 8080,
      created: "2021-06-14",
      extra: 1,
    });
    assert.deepEqual(merged.serviceParams, { web: { workers: 4, threads: 2 } });
    assert.deepEqual(merged.serviceSecrets, { db: { replication: "vault:kv/shop#repl", admin: "vault:kv/admin" } });
    assert.deepEqual(merged.replicas, { web: 3 });
    assert.deepEqual(merged.tags, { environment: "production", tier: "2" });
    assert.deepEqual(merged.services, [
      { name: "cache", service: "memcached" },
      { name: "search", service: "elastic" },
    ]);
    assert.deepEqual(merged.stages, manifest.input.stages, "stages kept unless --stage is given");
    assert.deepEqual(
      mergeInput(manifest.input, { ...emptyInput(), stages: [{ name: "all", services: ["db"] }] }).stages,
      [{ name: "all", services: ["db"] }],
    );
  });

  it("builds the StackInstanceSpec of the request", () => {
    const manifest = parseManifest(ORIGINAL, "shop.yaml").manifest;
    assert.ok(manifest);
    const spec = create(StackInstanceSpecSchema, specOf("shop", "webshop", "eu-platform", manifest.input));
    assert.equal(spec.name, "shop");
    assert.equal(spec.stackApplicationTemplate, "webshop");
    assert.equal(spec.stackInfrastructureTemplate, "eu-platform");
    assert.deepEqual(spec.params, manifest.input.params);
    assert.deepEqual(spec.serviceSecrets.db?.secrets, { replication: "vault:kv/shop#repl" });
    assert.deepEqual(spec.serviceParams.web, { workers: 4 });
    assert.deepEqual(
      spec.services.map((s) => [s.name, s.service]),
      [["cache", "redis"]],
    );
    assert.deepEqual(
      spec.stages.map((s) => [s.name, s.services]),
      [
        ["data", ["db", "cache"]],
        ["app", ["web"]],
      ],
    );
  });
});

describe("update instance: extra services", () => {
  const instance = create(StackInstanceSchema, {
    name: "shop",
    serviceOrder: ["db", "web", "cache", "search"],
    extraServices: [
      { name: "cache", service: "redis" },
      { name: "search", service: "elastic" },
    ],
  });

  it("keeps the instance's extras, adds or replaces by alias, removes the ones named", () => {
    assert.deepEqual(desiredServices(instance, [], []), [
      { name: "cache", service: "redis" },
      { name: "search", service: "elastic" },
    ]);
    assert.deepEqual(desiredServices(instance, [{ name: "queue", service: "rabbitmq" }], ["search"]), [
      { name: "cache", service: "redis" },
      { name: "queue", service: "rabbitmq" },
    ]);
    assert.deepEqual(desiredServices(instance, [{ name: "cache", service: "memcached" }], []), [
      { name: "cache", service: "memcached" },
      { name: "search", service: "elastic" },
    ]);
  });

  it("refuses to remove template services or unknown aliases", () => {
    assert.throws(() => desiredServices(instance, [], ["web"]), /web is a service of the application template/);
    assert.throws(
      () => desiredServices(instance, [], ["nope"]),
      /has no extra service nope \(extra services: cache, search\)/,
    );
  });
});
