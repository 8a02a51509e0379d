#!/usr/bin/env bash
# The whole test suite, installing what it needs: npm packages, then the build, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

npm ci --no-audit --no-fund
npm run build
npx vitest run "$@"
