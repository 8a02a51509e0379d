#!/usr/bin/env bash
# The whole test suite, installing what it needs: Debian packages (PostgreSQL, Chromium), npm packages, a real
# Kubernetes control plane built from Go modules (cached outside the repository), then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use for real: PostgreSQL (backups, data copies) and Chromium (the dashboard).
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-liberation)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# The Kubernetes suite must run, never be skipped: its control plane needs Go to build the first time.
if ! command -v go >/dev/null 2>&1 && ! scripts/testenv.sh status >/dev/null 2>&1; then
  echo "go not found: the Kubernetes suite needs Go >= 1.26 to build its control plane (scripts/testenv.sh)" >&2
fi
# Start (and, on a fresh machine, build) the control plane while npm installs and the build run.
testenv_log=$(mktemp)
was_running=0; scripts/testenv.sh status >/dev/null 2>&1 && was_running=1
scripts/testenv.sh start >"$testenv_log" 2>&1 &
testenv_pid=$!
cleanup() { [ "$was_running" = 1 ] || scripts/testenv.sh stop >/dev/null 2>&1 || true; rm -f "$testenv_log" "${tools_log:-}"; }
trap cleanup EXIT

# The real third-party tools the tests integrate with (Helm, an OCI registry, Jsonnet, Pebble, sops), built from their
# Go modules into the same cache (scripts/tools.sh), while npm installs.
tools_log=$(mktemp)
scripts/tools.sh build >"$tools_log" 2>&1 &
tools_pid=$!

npm ci --no-audit --no-fund
npm run build

if ! wait "$testenv_pid"; then
  cat "$testenv_log" >&2
  echo "the Kubernetes test control plane did not start (see above); the Kubernetes suite cannot run" >&2
  exit 1
fi
eval "$(scripts/testenv.sh env)"
if ! wait "$tools_pid"; then
  cat "$tools_log" >&2
  echo "a tool the tests integrate with could not be built (see above)" >&2
  exit 1
fi
eval "$(scripts/tools.sh env)"
# A Kubernetes suite that finds no control plane fails instead of skipping.
export CI=${CI:-true}

npx vitest run "$@"
