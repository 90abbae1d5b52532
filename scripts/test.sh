#!/usr/bin/env bash
# The whole test suite: installs the real tools it needs (pinned, cached), checks types, lint and generated code,
# then runs every test (unit, integration against real PostgreSQL and NATS, end to end with real processes).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
start=$(date +%s)
bash scripts/tools.sh
# shellcheck source=/dev/null
. scripts/tools-env.sh
export TF_CLI_CONFIG_FILE=/dev/null
echo "== typecheck"; tsc --noEmit -p tsconfig.json
echo "== lint"; biome check .
echo "== generated code"; bash scripts/check-gen.sh
echo "== policy bundles"; tsx scripts/build-policies.ts --check
echo "== tests"
files=$(find test -name '*.test.ts' | sort)
# Integration and e2e tests start their own servers on free loopback ports; two at a time on 2 cores.
tsx --test --test-concurrency="${STACKL_TEST_CONCURRENCY:-2}" --test-timeout=600000 $files
echo "== done in $(( $(date +%s) - start ))s"
