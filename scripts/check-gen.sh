#!/usr/bin/env bash
# Fails when gen/ (or the vendored validate.proto) no longer matches its sources: run `npm run generate` and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
tsx scripts/vendor-validate-proto.ts --check
buf lint
buf format -d --exit-code --path proto/stackl
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
buf generate -o "$tmp"
# gen/policies holds the compiled policy bundles (checked by scripts/build-policies.ts --check).
if ! diff -r -q -x policies -x README.md "$tmp/gen" gen >/dev/null; then
  diff -r -x policies -x README.md "$tmp/gen" gen | head -40
  echo "gen/ is stale: run 'npm run generate' and commit the result" >&2
  exit 1
fi
if git rev-parse --verify -q main >/dev/null 2>&1 && git cat-file -e main:proto/stackl 2>/dev/null; then
  buf breaking --against '.git#branch=main'
fi
echo "gen/ is up to date"
