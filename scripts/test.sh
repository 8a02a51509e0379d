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
cleanup() { [ "$was_running" = 1 ] || scripts/testenv.sh stop >/dev/null 2>&1 || true; rm -f "$testenv_log"; }
trap cleanup EXIT

# The real sops tool, for the interoperability tests of `keelson secret` (not a Debian package: built from its Go module).
sops_dir="${KEELSON_TESTENV_CACHE:-$HOME/.cache/keelson-testenv}/sops-v3.13.2"
sops_pid=""
if [ ! -x "$sops_dir/sops" ] && command -v go >/dev/null 2>&1; then
  (GOBIN="$sops_dir" GOFLAGS=-trimpath go install -ldflags='-s -w' github.com/getsops/sops/v3/cmd/sops@v3.13.2) &
  sops_pid=$!
fi

npm ci --no-audit --no-fund
npm run build

if ! wait "$testenv_pid"; then
  cat "$testenv_log" >&2
  echo "the Kubernetes test control plane did not start (see above); the Kubernetes suite cannot run" >&2
  exit 1
fi
eval "$(scripts/testenv.sh env)"
if [ -n "$sops_pid" ]; then wait "$sops_pid" || echo "building sops failed; its interoperability tests will be skipped" >&2; fi
[ -x "$sops_dir/sops" ] && export KEELSON_SOPS_BIN="$sops_dir/sops"
# A Kubernetes suite that finds no control plane fails instead of skipping.
export CI=${CI:-true}

npx vitest run "$@"
