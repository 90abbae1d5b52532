import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { PolicyTemplate } from "../../gen/stackl/v1/documents_pb.js";
import type { PolicyService } from "../../gen/stackl/v1/policies_pb.js";
import { StacklError } from "../errors.js";
import { BUILTIN_POLICIES, type BuiltinPolicyName, builtinBundle } from "../policy/builtin-policies.js";
import { defaultPolicyEngine } from "../policy/contracts.js";
import { sha256Hex } from "../policy/policy-bundle.js";
import { entrypointOf } from "../policy/rego-compiler.js";
import type { DecisionRepo } from "../store/decision-repo.js";
import type { DocumentRepo } from "../store/document-repo.js";
import { documentFromStored } from "./document-codec.js";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.js";
import { principalOf } from "./principal.js";

export function createPolicyService(deps: {
  documents: DocumentRepo;
  decisions: DecisionRepo;
}): Partial<ServiceImpl<typeof PolicyService>> {
  return {
    async evaluatePolicy(req, ctx) {
      if (req.policy === "") throw StacklError.invalid([{ field: "policy", message: "is required" }]);
      if (req.rule === "") throw StacklError.invalid([{ field: "rule", message: "is required" }]);
      let bundle: Uint8Array;
      let packageName: string;
      if (req.policy in BUILTIN_POLICIES) {
        const name = req.policy as BuiltinPolicyName;
        bundle = builtinBundle(name);
        packageName = BUILTIN_POLICIES[name].packageName;
      } else {
        const row = await deps.documents.get("policy_template", req.policy, ctx.signal);
        if (row === undefined) throw StacklError.notFound(`policy template "${req.policy}"`);
        const template = documentFromStored(row).spec.value as PolicyTemplate;
        if (template.bundle.length === 0) {
          throw StacklError.invalid([
            { field: "policy", message: `policy template "${req.policy}" has no compiled bundle` },
          ]);
        }
        bundle = template.bundle;
        packageName = req.policy;
      }
      const input = req.input === undefined ? null : toJson(ValueSchema, req.input);
      const evaluation = await defaultPolicyEngine().evaluate(bundle, entrypointOf(packageName, req.rule), input);
      let decisionId = "";
      if (req.logDecision) {
        [decisionId = ""] = await deps.decisions.record(
          [
            {
              policy: req.policy,
              rule: req.rule,
              input,
              result: evaluation.result,
              durationMs: evaluation.durationMs,
              principal: principalOf(ctx),
              rpc: "stackl.v1.PolicyService/EvaluatePolicy",
              bundleSha256: sha256Hex(bundle),
            },
          ],
          ctx.signal,
        );
      }
      return {
        result: fromJson(ValueSchema, (evaluation.defined ? evaluation.result : null) as JsonValue),
        defined: evaluation.defined,
        duration: durationFromMs(Math.round(evaluation.durationMs)),
        decisionId,
      };
    },

    async listDecisions(req, ctx) {
      const limit = pageSize(req.pageSize);
      const before = decodePageToken(
        req.pageToken,
        (v): v is { createdAt: string; id: string } => typeof (v as { id?: unknown })?.id === "string",
      );
      const rows = await deps.decisions.list({
        policy: req.policy,
        stackInstance: req.stackInstance,
        limit: limit + 1,
        before,
        signal: ctx.signal,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        decisions: page.map((d) => ({
          id: d.id,
          policy: d.policy,
          rule: d.rule,
          input: fromJson(ValueSchema, (d.input ?? null) as JsonValue),
          result: fromJson(ValueSchema, (d.result ?? null) as JsonValue),
          time: timestampFromDate(d.createdAt),
          duration: durationFromMs(Math.round(d.durationMs)),
          stackInstance: d.stackInstance ?? "",
          phase: d.phase ?? "",
          principal: d.principal ?? "",
          rpc: d.rpc ?? "",
          bundleSha256: d.bundleSha256 ?? "",
        })),
        nextPageToken:
          rows.length > limit && last ? encodePageToken({ createdAt: last.createdAt.toISOString(), id: last.id }) : "",
      };
    },
  };
}
