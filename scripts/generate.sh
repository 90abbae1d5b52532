#!/usr/bin/env bash
# Regenerates everything under gen/ from proto/ (and, later, policy bundles). Run: npm run generate
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
buf lint
buf generate
