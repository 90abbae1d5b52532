# The default orchestration policy of STACKL (contract: reference/stackl.md §3.2-3.3), Rego v1, compiled to
# WebAssembly by scripts/build-policies.ts. Entry points:
#
#   orchestration/solutions   {"fulfilled": true, "services": {alias: {"service": s, "targets": [key, ...]}}}
#                             | {"fulfilled": false, "msg": "Could not find a target for services {\"a\", \"b\"}"}
#   orchestration/solution_groups  the same decision grouped by distinct resource requirements (compact)
#   orchestration/rejections  {alias: {target key: [reason, ...]}} for every rejected target (placement plans)
#   orchestration/rejection_groups  the same, grouped by distinct resource requirements (compact, for large plans)
#
# A target is eligible for a service when
#   (a) resources: for every key r of service.resource_requirements that the target also has, the target's quantity
#       is >= the requirement (quantities are byte sizes as `units.parse_bytes` reads them: "2GB", "512Mi", "20");
#       a target lacking r, or a quantity that cannot be read, does not reject (as the original);
#   (b) tags: there is no tag t with required_tags[t] != target.tags[t] and required_tags[t] != "all";
#       a target lacking tag t does not reject (as the original).
#
# Differences from the original (deliberate, documented in src/policy/README.md):
#   - target lists are sorted by key explicitly: WebAssembly iterates objects and sets in insertion order, not
#     sorted (the original relied on the OPA server's sorted object keys);
#   - a JSON number is taken as a count of bytes (the original passed it to units.parse_bytes, which raised a
#     type error, so such a requirement was silently ignored);
#   - messages are built without `sprintf` (the JS SDK's sprintf does not format like Go's) nor `format_int`
#     (WebAssembly's fails above 2^31 - 1: "strings: get uint failed"); numbers are printed with json.marshal.
package orchestration

# ---------------------------------------------------------------------------------------------------------------
# Input, with the defaults the original's comprehensions implied (a missing object iterates as empty).
# Besides the contract's fields the policy reads an optional `sort_hints`: {"infrastructure_targets": [sorted keys],
# "services": [sorted aliases]} (see sorted_keys).

services := object.get(input, "services", {})

infrastructure_targets := object.get(input, "infrastructure_targets", {})

required_tags := object.get(input, "required_tags", {})

sort_hints := object.get(input, "sort_hints", {})

# Every target key, sorted: the order of every `targets` list.
target_keys := sorted_keys(infrastructure_targets, object.get(sort_hints, "infrastructure_targets", null))

# Every service alias, sorted.
aliases := sorted_keys(services, object.get(sort_hints, "services", null))

# The keys of `obj`, sorted. WebAssembly iterates objects in hash order and its `sort` is an insertion sort:
# quadratic on hash-ordered keys (seconds for 10,000 targets), linear on sorted ones. So the contract wrapper passes
# the keys already sorted in input.sort_hints; a hint is used only when it holds exactly the keys of `obj` (and is
# sorted again, cheaply), otherwise the keys are sorted here. The result is the same either way.
sorted_keys(obj, hint) := sort(hint) if {
	is_array(hint)
	count(hint) == count(obj)
	count({k | some k in hint}) == count(hint)
	every k in hint {
		is_string(k)
		_ = obj[k]
	}
} else := sort([k | some k, _ in obj])

# ---------------------------------------------------------------------------------------------------------------
# Decisions

# alias -> {"service", "targets"}, for every service that has a `service` field (as the original).
placement := {alias: {"service": svc.service, "targets": eligible[alias]} |
	some alias, svc in services
}

# Aliases without any eligible target, sorted.
unplaced := [alias | some alias in aliases; count(eligible[alias]) == 0]

solutions := {"fulfilled": true, "services": placement} if {
	count(unplaced) == 0
} else := {"fulfilled": false, "msg": concat("", ["Could not find a target for services {", quoted_list(unplaced), "}"])}

# The same decision grouped by requirement profile: one entry per distinct `resource_requirements` with its aliases
# (sorted) and eligible targets (sorted), in the order of each group's first alias. Far smaller than `solutions` when
# many services share requirements (1,000 services × 10,000 targets, 6 profiles: ~1 MB of JSON instead of ~180 MB).
solution_groups := {"fulfilled": true, "groups": [group |
	some alias in aliases
	profile := requirements(alias)
	profile_aliases[profile][0] == alias
	group := {"aliases": profile_aliases[profile], "resource_requirements": profile, "targets": eligible_by_profile[profile]}
]} if {
	count(unplaced) == 0
} else := solutions

# alias -> target key -> [reason] for every target that a rule rejects; every alias appears (with {} when no target
# was rejected). Reasons come resources first (sorted by resource), then tags (sorted by tag).
rejections := {alias: rejections_by_profile[requirements(alias)] | some alias in aliases}

# The same explanations grouped by requirement profile, far smaller when many services have equal requirements
# (rejections repeats them per alias): one group per distinct `resource_requirements`, in the order of each group's
# first alias: [{"aliases": [sorted aliases], "resource_requirements": {...}, "rejections": {target key: [reason]}}].
rejection_groups := [group |
	some alias in aliases
	profile := requirements(alias)
	profile_aliases[profile][0] == alias
	group := {
		"aliases": profile_aliases[profile],
		"resource_requirements": profile,
		"rejections": rejections_by_profile[profile],
	}
]

# profile -> the aliases that have it, sorted.
profile_aliases := {profile: [alias | some alias in aliases; requirements(alias) == profile] | some profile in profiles}

# ---------------------------------------------------------------------------------------------------------------
# Rules. Complete rules are evaluated once per evaluation (memoized), functions on every call. So the tag check
# (independent of the service) runs once per target, and the resource check once per target and requirement
# profile: services with equal `resource_requirements` share their eligible targets and rejection reasons.

# A service's requirements as written: resource -> quantity.
requirements(alias) := object.get(services[alias], "resource_requirements", {})

profiles := {requirements(alias) | some alias in aliases}

# profile -> resource -> bytes; quantities that cannot be read are left out, so they never reject.
profile_bytes := {profile: {resource: quantity_bytes[quantity] |
	some resource, quantity in profile
} |
	some profile in profiles
}

# target key -> resource -> bytes, likewise.
available_bytes := {key: {resource: quantity_bytes[quantity] |
	some resource, quantity in object.get(target, "resources", {})
} |
	some key, target in infrastructure_targets
}

# Every distinct quantity of the input, parsed once: estates repeat a few sizes over thousands of targets, and each
# parse is a call to the host.
quantity_bytes := {quantity: n |
	some quantity in quantities
	n := parse_bytes(quantity)
}

quantities contains quantity if {
	some profile in profiles
	some quantity in profile
}

quantities contains quantity if {
	some target in infrastructure_targets
	some quantity in object.get(target, "resources", {})
}

# alias -> eligible target keys, sorted.
eligible := {alias: eligible_by_profile[requirements(alias)] | some alias in aliases}

eligible_by_profile := {profile: [key |
	some key in target_keys
	tags_match[key]
	not rejected_by_resources(profile_bytes[profile], key)
] |
	some profile in profiles
}

tags_match contains key if {
	some key in target_keys
	not rejected_by_tags(key)
}

# Whether the target lacks capacity for one of `needs` (resource -> bytes).
rejected_by_resources(needs, key) if {
	some resource, required in needs
	available := available_bytes[key][resource]
	available < required
}

rejected_by_tags(key) if {
	some tag, required in required_tags
	required != "all"
	required != infrastructure_targets[key].tags[tag]
}

# ---------------------------------------------------------------------------------------------------------------
# Explanations

rejections_by_profile := {profile: {key: reasons |
	some key in target_keys
	reasons := array.concat(object.get(resource_reasons[profile], key, []), object.get(tag_reasons, key, []))
	count(reasons) > 0
} |
	some profile in profiles
}

# profile -> target key -> resource reasons, for the targets the resources rule rejects.
resource_reasons := {profile: {key: reasons |
	some key in target_keys
	rejected_by_resources(profile_bytes[profile], key)
	reasons := resource_reasons_for(profile, key)
} |
	some profile in profiles
}

resource_reasons_for(profile, key) := [reason |
	some resource in sort([r | some r, _ in profile_bytes[profile]])
	available := available_bytes[key][resource]
	required := profile_bytes[profile][resource]
	available < required
	reason := {
		"rule": "resources",
		"resource": resource,
		"required": profile[resource],
		"available": infrastructure_targets[key].resources[resource],
		"msg": concat("", [
			"resource ", json.marshal(resource), ": the target offers ",
			json.marshal(infrastructure_targets[key].resources[resource]), " (", json.marshal(available), " bytes)",
			", the service requires ", json.marshal(profile[resource]), " (", json.marshal(required), " bytes)",
		]),
	}
]

# target key -> tag reasons, for the targets the tags rule rejects.
tag_reasons := {key: reasons |
	some key in target_keys
	not tags_match[key]
	reasons := tag_reasons_for(key)
}

sorted_tags := sort([t | some t, _ in required_tags])

tag_reasons_for(key) := [reason |
	some tag in sorted_tags
	required := required_tags[tag]
	required != "all"
	actual := infrastructure_targets[key].tags[tag]
	required != actual
	reason := {
		"rule": "tags",
		"tag": tag,
		"required": required,
		"actual": actual,
		"msg": concat("", [
			"tag ", json.marshal(tag), ": the target has ", json.marshal(actual),
			", the request requires ", json.marshal(required),
		]),
	}
]

# A byte quantity: a string as `units.parse_bytes` reads it ("2GB", "512Mi", "1.5TB", "20"), or a JSON number taken
# as is. `units.parse_bytes` is not compiled into WebAssembly modules: STACKL's engine supplies it as a host built-in
# with OPA's exact semantics (src/policy/parse-bytes.ts). Undefined when the quantity cannot be read (where the
# builtin raises an error, which the original's non-strict evaluation also turned into "undefined").
parse_bytes(quantity) := quantity if is_number(quantity)

parse_bytes(quantity) := units.parse_bytes(quantity) if is_string(quantity)

# ---------------------------------------------------------------------------------------------------------------
# Formatting

# `"a", "b"` for ["a", "b"]: Go's %v of a set of strings, as the original's message printed it.
quoted_list(items) := concat(", ", [json.marshal(item) | some item in items])
