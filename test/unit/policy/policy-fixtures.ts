/**
 * Builders of realistic placement inputs (reference §3.1 step 3) for the policy tests and benchmarks: targets
 * `<env>.<location>.<zone>` with byte-size resources and tags, services with resource requirements.
 */
import type {
  InfrastructureTargetInput,
  OrchestrationInput,
  OrchestrationServiceInput,
} from "../../../src/policy/contracts.js";

export interface EstateOptions {
  services: number;
  targets: number;
  /** Required tags of the request. @default { environment: "production" } */
  requiredTags?: Record<string, string>;
}

const LOCATIONS = ["ireland", "frankfurt", "paris", "stockholm", "milan"] as const;
const MEMORY = ["8GB", "16GB", "32GB", "64GB", "128GB", "512Mi", "2Gi", "64Gi"] as const;

/** A deterministic estate: targets spread over environments/locations/zones, varied capacities and tags. */
export function estate(o: EstateOptions): OrchestrationInput {
  const infrastructure_targets: Record<string, InfrastructureTargetInput> = {};
  for (let i = 0; i < o.targets; i++) {
    const env = i % 5 === 4 ? "development" : "production";
    const location = LOCATIONS[i % LOCATIONS.length] ?? "ireland";
    const key = `${env}.${location}.zone-${String(i).padStart(5, "0")}`;
    infrastructure_targets[key] = {
      resources: {
        memory: MEMORY[i % MEMORY.length] ?? "8GB",
        cpu: String(4 * ((i % 8) + 1)),
        disk: `${(i % 4) + 1}TB`,
      },
      tags: { environment: env, tier: i % 3 === 0 ? "gold" : "silver", location },
      params: { zone_index: i, dns_domain: `${location}.example.com` },
    };
  }
  const services: Record<string, OrchestrationServiceInput> = {};
  for (let s = 0; s < o.services; s++) {
    const alias = `svc-${String(s).padStart(4, "0")}`;
    services[alias] = {
      service: `service-${s % 7}`,
      functional_requirements: {
        linux: { generic: { tool: "terraform", image: "registry.example.com/linux:1" } },
        app: { generic: { tool: "ansible", image: "registry.example.com/app:1", playbook_path: "site.yml" } },
      },
      resource_requirements: { memory: s % 4 === 0 ? "32GB" : "4GB", cpu: (s % 3) + 1, disk: "500GB" },
      params: { app_version: `1.${s}` },
    };
  }
  return {
    required_tags: o.requiredTags ?? { environment: "production" },
    services,
    infrastructure_targets,
    stack_instance: "bench-instance",
  };
}

/** The two-location web shop of the STACKL fixture tree, as an orchestration input. */
export function webshopInput(requiredTags: Record<string, string> = { environment: "production" }): OrchestrationInput {
  return {
    required_tags: requiredTags,
    services: {
      web: { service: "web", resource_requirements: { memory: "2GB", cpu: 2 } },
      db: { service: "database", resource_requirements: { memory: "32GB", disk: "1.5TB" } },
      lb: { service: "loadbalancer", resource_requirements: {} },
      monitoring: { service: "monitoring" },
    },
    infrastructure_targets: {
      // Inserted out of order on purpose: the policy must sort keys itself.
      "production.ireland.eu-west-1-b": {
        resources: { memory: "64GB", cpu: "32", disk: "2TB" },
        tags: { environment: "production", tier: "gold" },
      },
      "production.frankfurt.eu-central-1-a": {
        resources: { memory: "16GB", cpu: "8" },
        tags: { environment: "production", tier: "silver" },
      },
      "development.lab.rack-1": {
        resources: { memory: "128GB", cpu: "64", disk: "10TB" },
        tags: { environment: "development" },
      },
      "production.ireland.eu-west-1-a": {
        resources: { memory: "32768MB", disk: "1000GB" },
        tags: { environment: "production", tier: "gold" },
      },
    },
    stack_instance: "shop",
  };
}
