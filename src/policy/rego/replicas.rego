# The default replicas policy of STACKL (contract: reference/stackl.md §3.2-3.3), Rego v1, compiled to WebAssembly
# by scripts/build-policies.ts. Entry point:
#
#   replicas/solutions  {"fulfilled": true, "services": {alias: {"service": s, "targets": [key, ...]}}}
#                       | {"fulfilled": false, "msg": "Not enough targets for services {...}"}
#
# Input: {"parameters": {"services": {alias: replica count}, "exclusive": bool},
#         "services": {alias: {"service": s, "targets": [candidate keys, in preference order]}}}
#
# Unless parameters.exclusive is set (the original never set it and answered "not fulfilled"), every service keeps
# its first N candidates, N = parameters.services[alias]; fulfilled iff every service of input.services has a count
# and at least N candidates. The candidates' order is kept (the caller passes them sorted by key, as the
# orchestration policy returns them); the result is a function of the input alone.
#
# Difference from the original: the "not fulfilled" message names only the services that fall short, each with its
# count and its number of candidates, in alias order, instead of printing the whole input map (which is unbounded
# and printed by the JS SDK's sprintf differently from Go's).
package replicas

services := object.get(input, "services", {})

counts := object.get(object.get(input, "parameters", {}), "services", {})

# alias -> {"service", "targets"} for every service that has enough candidates.
placed := {alias: {"service": services[alias].service, "targets": array.slice(targets, 0, amount)} |
	some alias, amount in counts
	targets := services[alias].targets
	count(targets) >= amount
}

solutions := {"fulfilled": true, "services": placed} if {
	not input.parameters.exclusive
	count(services) == count(placed)
} else := {"fulfilled": false, "msg": concat("", ["Not enough targets for services {", concat(", ", shortfalls), "}", exclusive_note])}

# One entry per service of input.services that was not placed, in alias order.
shortfalls := [entry |
	some alias in sort([a | some a, _ in services])
	not placed[alias]
	entry := concat("", [json.marshal(alias), " (", shortfall(alias), ")"])
]

shortfall(alias) := concat("", [
	json.marshal(counts[alias]), " requested, ",
	json.marshal(count(object.get(services[alias], "targets", []))), " available",
]) if {
	is_number(counts[alias])
}

shortfall(alias) := "no replica count in parameters.services" if {
	object.get(counts, alias, null) == null
}

shortfall(alias) := "the replica count is not a number" if {
	amount := object.get(counts, alias, null)
	amount != null
	not is_number(amount)
}

exclusive_note := ": exclusive placement (parameters.exclusive) is not supported" if {
	input.parameters.exclusive
} else := ""
