import type { DescService } from "@bufbuild/protobuf";
import { AgentService } from "../../gen/stackl/v1/agents_pb.js";
import { DocumentService } from "../../gen/stackl/v1/documents_pb.js";
import { JobService } from "../../gen/stackl/v1/jobs_pb.js";
import { PolicyService } from "../../gen/stackl/v1/policies_pb.js";
import { StackInstanceService } from "../../gen/stackl/v1/stack_instances_pb.js";
import { TaskService } from "../../gen/stackl/v1/tasks_pb.js";

/**
 * Every service of the public API (package `stackl.v1`). The server registers all of them, always: methods with no
 * implementation yet answer UNIMPLEMENTED (see `unimplemented.ts`).
 */
export const STACKL_SERVICES: readonly DescService[] = [
  DocumentService,
  StackInstanceService,
  TaskService,
  JobService,
  AgentService,
  PolicyService,
];
