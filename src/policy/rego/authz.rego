# The default authorization policy of the STACKL API, consulted for every RPC. Rego v1, compiled to WebAssembly by
# scripts/build-policies.ts. Entry points:
#
#   stackl/authz/allow   true | false (always defined; deny by default)
#   stackl/authz/reason  why, in one sentence (always defined)
#
# Input: {"principal": {"name": "alice", "roles": ["viewer"]}, "rpc": "stackl.v1.DocumentService/ApplyDocuments"}
#
# The table:
#
#   role     may call
#   -------  -------------------------------------------------------------------------------------------------
#   admin    every RPC
#   viewer   read-only RPCs: Get*, List*, Watch* of stackl.v1 services, StreamJobLogs, PlanStackInstance,
#            EvaluatePolicy, and server reflection
#   agent    AgentService/Connect only
#   anyone   the health service (grpc.health.v1.Health/Check and Watch), even without roles
#
# The principal named "local" is the anonymous caller of the embedded development server (`stackl dev`) and is an
# admin whatever its roles. The authentication layer must never give that name to a remote caller.
package stackl.authz

# role -> the classes of RPC it may call.
role_grants := {
	"admin": {"public", "read", "write", "agent"},
	"viewer": {"public", "read"},
	"agent": {"public", "agent"},
}

# RPCs anyone may call.
public_rpcs := {
	"grpc.health.v1.Health/Check",
	"grpc.health.v1.Health/Watch",
}

# RPCs reserved to agents' own sessions.
agent_rpcs := {"stackl.v1.AgentService/Connect"}

# Read-only RPCs that do not follow the Get*/List*/Watch* naming.
read_only_rpcs := {
	"stackl.v1.JobService/StreamJobLogs",
	"stackl.v1.StackInstanceService/PlanStackInstance",
	"stackl.v1.PolicyService/EvaluatePolicy",
	"grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
	"grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}

# Method-name prefixes of read-only RPCs of stackl.v1 services.
read_only_prefixes := ["Get", "List", "Watch"]

# The principal that is always an admin: the embedded development server's anonymous caller.
local_principal := "local"

# ---------------------------------------------------------------------------------------------------------------

default allow := false

allow := decision.allow

default reason := "denied: the policy could not decide"

reason := decision.reason

# "read" | "write" | "agent" | "public" for a well-formed input.rpc ("<package>.<Service>/<Method>").
rpc_class := "public" if {
	input.rpc in public_rpcs
} else := "agent" if {
	input.rpc in agent_rpcs
} else := "read" if {
	input.rpc in read_only_rpcs
} else := "read" if {
	startswith(rpc_service, "stackl.v1.")
	some prefix in read_only_prefixes
	startswith(rpc_method, prefix)
} else := "write"

rpc_parts := split(input.rpc, "/")

rpc_service := rpc_parts[0]

rpc_method := rpc_parts[1]

well_formed_rpc if {
	is_string(input.rpc)
	count(rpc_parts) == 2
	rpc_service != ""
	rpc_method != ""
}

principal_name := name if {
	name := input.principal.name
	is_string(name)
} else := ""

# The principal's roles, sorted (a missing or malformed list counts as no roles).
principal_roles := sort([role | some role in input.principal.roles; is_string(role)])

# Roles of the principal that grant this RPC, sorted.
granting_roles := [role | some role in principal_roles; rpc_class in role_grants[role]]

decision := {"allow": false, "reason": "denied: input.rpc must be a string \"<package>.<Service>/<Method>\""} if {
	not well_formed_rpc
} else := {"allow": true, "reason": concat("", [
	"allowed: principal \"local\" is the embedded development server's caller and an admin",
])} if {
	principal_name == local_principal
} else := {"allow": true, "reason": concat("", ["allowed: ", input.rpc, " is public"])} if {
	rpc_class == "public"
} else := {"allow": true, "reason": concat("", [
	"allowed: role ", granting_roles[0], " may call ", rpc_class, " RPC ", input.rpc,
])} if {
	count(granting_roles) > 0
} else := {"allow": false, "reason": concat("", [
	"denied: ", roles_phrase, " may call ", rpc_class, " RPC ", input.rpc,
	" (roles that may: ", concat(", ", roles_for_class), ")",
])}

roles_phrase := concat("", [json.marshal(principal_name), " has no role that"]) if {
	count(principal_roles) == 0
} else := concat("", ["no role of ", json.marshal(principal_name), " (", concat(", ", principal_roles), ")"])

# Roles that would grant this RPC, sorted.
roles_for_class := sort([role | some role, classes in role_grants; rpc_class in classes])
