import type { Logger } from "pino";
import type { Document, PolicyTemplate } from "../../gen/stackl/v1/documents_pb.js";
import { findOpa } from "./opa-cli.js";
import { readPolicyBundle } from "./policy-bundle.js";
import { compileRegoPolicy } from "./rego-compiler.js";

/**
 * Gives every policy template in a batch a compiled bundle before it is stored: a supplied bundle is checked and
 * described (sha256, entrypoints); Rego source without a bundle is compiled with the opa CLI when it is installed
 * (older pre-1.0 syntax accepted). Without opa, the template is stored uncompiled and placement that needs it fails
 * with a clear message. Errors name the field (`documents[i].document.policy_template.…`).
 */
export async function compilePolicyTemplates(
  docs: readonly Document[],
  logger: Logger,
  signal: AbortSignal,
): Promise<void> {
  const opa = process.env.STACKL_OPA_PATH || findOpa();
  for (const [i, doc] of docs.entries()) {
    if (doc.spec.case !== "policyTemplate") continue;
    const t: PolicyTemplate = doc.spec.value;
    const name = doc.meta?.name ?? "";
    const path = `documents[${i}].document.policy_template`;
    if (t.bundle.length > 0) {
      const bundle = readPolicyBundle(t.bundle, `${path}.bundle`);
      t.bundleSha256 = bundle.sha256;
      t.entrypoints = [...bundle.entrypoints];
      continue;
    }
    t.bundleSha256 = "";
    t.entrypoints = [];
    if (t.policy === "") continue;
    if (opa === undefined) {
      logger.warn({ policy_template: name }, "opa is not installed: policy template stored without a compiled bundle");
      continue;
    }
    const compiled = await compileRegoPolicy({
      name,
      source: t.policy,
      regoVersion: t.regoVersion === "v1" ? "v1" : t.regoVersion === "v0" ? "v0" : "auto",
      opaPath: opa,
      signal,
      fieldPath: `${path}.policy`,
    });
    t.bundle = compiled.bundle;
    t.bundleSha256 = compiled.sha256;
    t.entrypoints = [...compiled.entrypoints];
  }
}
