# shellcheck shell=bash
# Source me (do not execute):   . scripts/tools-env.sh
# Puts the pinned tools cached by scripts/tools.sh on PATH (nats-server, grpcurl, opa, tofu, ansible-*) plus
# /usr/lib/postgresql/<major>/bin. Installs nothing: run scripts/tools.sh first. Safe to source repeatedly.
_stackl_tools_sh="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)/tools.sh"
if _stackl_path_line="$(bash "$_stackl_tools_sh" --print-path)"; then
	eval "$_stackl_path_line"
else
	echo "tools-env.sh: could not compute PATH (scripts/tools.sh --print-path failed)" >&2
fi
unset _stackl_tools_sh _stackl_path_line
