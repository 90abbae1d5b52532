#!/usr/bin/env bash
# Installs, pinned and cached, every external tool the tests need (versions: scripts/versions.env).
#
#   scripts/tools.sh [tool...]     install the named tools (default: all of postgres nats grpcurl opa tofu ansible)
#   scripts/tools.sh --print-path  print an `export PATH=...` line for the cached tools (installs nothing)
#   . scripts/tools-env.sh         the same, applied to the current shell
#
# Tools land in ${STACKL_TOOLS_DIR:-$HOME/.cache/stackl-tools}/<tool>-<version>/bin/ (PostgreSQL comes from
# Debian: /usr/lib/postgresql/<major>/bin). Go builds use Go's normal module and build caches and run in
# parallel; a second run only checks the cache and takes well under a second per tool.
# Prints one line per tool: `<tool> <version>: cached` or `<tool> <version>: installed in <N>s`.
# Needs: Go >= 1.21 (older than GO_MIN_VERSION is fine if the Go proxy can supply the toolchain), Python >= 3.11
# for ansible-core, and root (or password-less sudo) only if a Debian package is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=versions.env
. "$ROOT/scripts/versions.env"
TOOLS_DIR="${STACKL_TOOLS_DIR:-$HOME/.cache/stackl-tools}"
ALL_TOOLS=(postgres nats grpcurl opa tofu ansible)
PG_BIN="/usr/lib/postgresql/$POSTGRES_MAJOR/bin"

die() {
	echo "tools.sh: error: $*" >&2
	exit 1
}

tool_version() {
	case "$1" in
	postgres) echo "$POSTGRES_MAJOR" ;;
	nats) echo "$NATS_SERVER_VERSION" ;;
	grpcurl) echo "$GRPCURL_VERSION" ;;
	opa) echo "$OPA_VERSION" ;;
	tofu) echo "$OPENTOFU_VERSION" ;;
	ansible) echo "$ANSIBLE_CORE_VERSION" ;;
	*) die "unknown tool '$1' (known: ${ALL_TOOLS[*]})" ;;
	esac
}

# The binary whose presence marks a tool as installed.
tool_main_bin() {
	case "$1" in
	nats) echo nats-server ;;
	ansible) echo ansible-playbook ;;
	*) echo "$1" ;;
	esac
}

tool_dir() { echo "$TOOLS_DIR/$1-$(tool_version "$1")"; }

# Directories the pinned tools live in (what tools-env.sh puts on PATH).
bin_dirs() {
	local t
	for t in "${ALL_TOOLS[@]}"; do
		if [[ "$t" == postgres ]]; then
			echo "$PG_BIN"
		else
			echo "$(tool_dir "$t")/bin"
		fi
	done
}

print_path() {
	local d new=""
	while IFS= read -r d; do
		case ":$PATH:" in *":$d:"*) continue ;; esac
		new="${new:+$new:}$d"
	done < <(bin_dirs)
	if [[ -n "$new" ]]; then
		printf 'export PATH=%q:"$PATH"\n' "$new"
	else
		echo 'export PATH="$PATH"'
	fi
}

# ---------------------------------------------------------------------------------------------------------
# Debian packages

APT_UPDATED=0
as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		die "need root to run: $* (re-run scripts/tools.sh as root, or install the package yourself)"
	fi
}

deb_installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]; }

# apt_ensure pkg... — installs the missing ones; `apt-get update` runs at most once, and only if needed.
apt_ensure() {
	local missing=() p
	for p in "$@"; do deb_installed "$p" || missing+=("$p"); done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	command -v apt-get >/dev/null 2>&1 || die "Debian package(s) ${missing[*]} missing and apt-get not found"
	if [[ $APT_UPDATED -eq 0 ]]; then
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
			die "apt-get update failed (is the Debian mirror reachable?)"
		APT_UPDATED=1
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
		die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------------------------------------------------
# Go

version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }

GO_READY=0
setup_go() {
	[[ $GO_READY -eq 1 ]] && return 0
	command -v go >/dev/null 2>&1 ||
		die "'go' not found on PATH; install Go >= $GO_MIN_VERSION (https://go.dev/dl) and re-run"
	local v
	v="$(go env GOVERSION)" || die "'go env GOVERSION' failed"
	v="${v#go}"
	v="${v%% *}"
	if ! version_ge "$v" "$GO_MIN_VERSION"; then
		version_ge "$v" 1.21 || die "go $v is too old (need >= $GO_MIN_VERSION, or >= 1.21 to auto-download it)"
		# Let the go command fetch the needed toolchain from the Go module proxy.
		export GOTOOLCHAIN="go$GO_MIN_VERSION+auto"
	fi
	export CGO_ENABLED=0
	GOFLAGS="$(go env GOFLAGS) -trimpath"
	export GOFLAGS
	GO_READY=1
}

go_install_to() { # dir pkg@version [go install flags...]
	local dir="$1" pkg="$2"
	shift 2
	rm -rf "$dir"
	mkdir -p "$dir/bin"
	GOBIN="$dir/bin" go install "$@" "$pkg"
}

# OpenTofu's go.mod has replace directives, so `go install …@version` refuses; build it from a throwaway module
# that requires it at the pinned version and carries the same replace (and godebug) directives.
build_tofu() { # dir
	local dir="$1" work gomod
	work="$(mktemp -d "${TMPDIR:-/tmp}/stackl-tofu-build.XXXXXX")"
	# shellcheck disable=SC2064
	trap "rm -rf '$work'" RETURN
	gomod="$(cd "$work" && go mod download -json "github.com/opentofu/opentofu@$OPENTOFU_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
	[[ -f "$gomod" ]] || die "could not download github.com/opentofu/opentofu@$OPENTOFU_VERSION from the Go proxy"
	(
		cd "$work"
		go mod init stackl.local/tofu-build >/dev/null 2>&1
		{
			echo
			awk '
				inblk { print; if ($0 ~ /^\)/) inblk = 0; next }
				/^(replace|godebug)[ \t]*\(/ { print; inblk = 1; next }
				/^(replace|godebug)[ \t]/ { print }
			' "$gomod"
		} >>go.mod
		if grep -Eq '=>[[:space:]]*(\.|/)' go.mod; then
			die "opentofu $OPENTOFU_VERSION replaces a module with a local path; it cannot be built from the proxy"
		fi
		go get "github.com/opentofu/opentofu/cmd/tofu@$OPENTOFU_VERSION"
		mkdir -p "$dir/bin"
		# version.dev=no is what release builds set: `tofu version` says 1.x.y, not 1.x.y-dev (a prerelease
		# version would fail `required_version` constraints).
		go build -ldflags "-X github.com/opentofu/opentofu/version.dev=no" -o "$dir/bin/tofu" \
			github.com/opentofu/opentofu/cmd/tofu
	)
}

# ---------------------------------------------------------------------------------------------------------
# Python / ansible-core

pick_python() {
	if [[ -n "${STACKL_PYTHON:-}" ]]; then
		echo "$STACKL_PYTHON"
	elif [[ -x /usr/bin/python3 ]]; then
		echo /usr/bin/python3 # the distro Python outlives pyenv/asdf shims, so the cached venv stays valid
	elif command -v python3 >/dev/null 2>&1; then
		command -v python3
	else
		echo ""
	fi
}

install_ansible() { # dir
	local dir="$1" py
	py="$(pick_python)"
	if [[ -z "$py" ]]; then
		apt_ensure python3 python3-venv
		py=/usr/bin/python3
	fi
	"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
		die "ansible-core $ANSIBLE_CORE_VERSION needs Python >= 3.11; $py is $("$py" -V 2>&1) (set STACKL_PYTHON)"
	if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
		[[ "$py" == /usr/bin/python3* ]] || die "$py cannot create virtualenvs (no ensurepip/venv module)"
		apt_ensure python3-venv
	fi
	rm -rf "$dir"
	mkdir -p "$dir/bin"
	"$py" -m venv "$dir/venv"
	"$dir/venv/bin/python" -m pip install --disable-pip-version-check --no-input -q "ansible-core==$ANSIBLE_CORE_VERSION"
	# Expose only the ansible entry points (not the venv's python/pip) on PATH.
	local f
	for f in "$dir"/venv/bin/ansible*; do ln -sf "../venv/bin/${f##*/}" "$dir/bin/${f##*/}"; done
}

# ---------------------------------------------------------------------------------------------------------
# Cache bookkeeping

LOG_DIR="$TOOLS_DIR/logs"

is_cached() { # tool
	local t="$1" dir
	if [[ "$t" == postgres ]]; then
		[[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" && -x "$PG_BIN/postgres" ]] && id postgres >/dev/null 2>&1
		return
	fi
	dir="$(tool_dir "$t")"
	[[ -f "$dir/.stackl-installed" && -x "$dir/bin/$(tool_main_bin "$t")" ]] || return 1
	if [[ "$t" == ansible ]]; then "$dir/venv/bin/python" -c '' >/dev/null 2>&1 || return 1; fi
	return 0
}

install_one() { # tool — runs the actual install; output goes to the caller's redirect
	local t="$1" dir
	dir="$(tool_dir "$t")"
	case "$t" in
	postgres) apt_ensure "postgresql-$POSTGRES_MAJOR" ;;
	nats) go_install_to "$dir" "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION" ;;
	grpcurl)
		go_install_to "$dir" "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION" \
			-ldflags "-X main.version=$GRPCURL_VERSION"
		;;
	opa) go_install_to "$dir" "github.com/open-policy-agent/opa@$OPA_VERSION" ;;
	tofu)
		rm -rf "$dir"
		build_tofu "$dir"
		;;
	ansible) install_ansible "$dir" ;;
	esac
	if [[ "$t" != postgres ]]; then
		[[ -x "$dir/bin/$(tool_main_bin "$t")" ]] || die "$t: build finished but $dir/bin/$(tool_main_bin "$t") is missing"
		tool_version "$t" >"$dir/.stackl-installed"
	fi
	is_cached "$t" || die "$t: installed, but the installation does not check out"
}

# ensure tool — prints the status line; returns non-zero (after printing the log tail) on failure.
ensure() {
	local t="$1" v start log lock rc=0
	v="$(tool_version "$t")"
	lock="$TOOLS_DIR/.$t.lock"
	exec {lockfd}>"$lock"
	flock "$lockfd" # serialise concurrent tools.sh runs on the same cache
	if is_cached "$t"; then
		echo "$t $v: cached"
		return 0
	fi
	log="$LOG_DIR/$t-$v.log"
	start=$SECONDS
	set +e
	(
		set -e
		install_one "$t"
	) >"$log" 2>&1
	rc=$?
	set -e
	if [[ $rc -ne 0 ]]; then
		{
			echo "$t $v: FAILED after $((SECONDS - start))s (exit $rc); last lines of $log:"
			tail -n 40 "$log" | sed 's/^/    /'
		} >&2
		return 1
	fi
	echo "$t $v: installed in $((SECONDS - start))s"
}

# ---------------------------------------------------------------------------------------------------------

main() {
	if [[ "${1:-}" == --print-path ]]; then
		print_path
		return 0
	fi
	if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
		sed -n '2,/^set /{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		return 0
	fi
	local tools=("$@") t
	[[ ${#tools[@]} -eq 0 ]] && tools=("${ALL_TOOLS[@]}")
	for t in "${tools[@]}"; do tool_version "$t" >/dev/null; done
	command -v flock >/dev/null 2>&1 || die "'flock' (util-linux) not found"
	mkdir -p "$TOOLS_DIR" "$LOG_DIR"

	# Go builds (CPU-bound, minutes for opa/tofu) run in the background, in parallel; apt/pip work runs
	# meanwhile in the foreground (it needs the apt lock and is network-bound).
	local go_tools=() fg_tools=() pids=() failed=0 i
	for t in "${tools[@]}"; do
		case "$t" in
		nats | grpcurl | opa | tofu) go_tools+=("$t") ;;
		*) fg_tools+=("$t") ;;
		esac
	done
	for t in "${go_tools[@]}"; do
		if ! is_cached "$t"; then setup_go; fi
		ensure "$t" &
		pids+=($!)
	done
	for t in "${fg_tools[@]}"; do ensure "$t" || failed=1; done
	for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed=1; done
	if [[ $failed -ne 0 ]]; then
		echo "tools.sh: error: some tools failed to install (see above); fix the cause and re-run scripts/tools.sh" >&2
		exit 1
	fi
}

main "$@"
