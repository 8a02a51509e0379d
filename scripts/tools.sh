#!/usr/bin/env bash
# The real third-party tools Keelson's tests integrate with, built from their Go modules (pinned here) into the same
# cache as the test control plane. Nothing is mocked: Helm renders charts, the registry serves OCI charts, Jsonnet
# evaluates, Pebble issues certificates, sops writes files Keelson must read.
#
#   scripts/tools.sh build [NAME…]   build what is missing (all tools by default); fails if one cannot be built
#   scripts/tools.sh env             print export lines for the tools that are built:  eval "$(scripts/tools.sh env)"
#   scripts/tools.sh path NAME       the binary's path (exit 1 when not built)
#
# KEELSON_TESTENV_CACHE  where binaries go, keyed by version (default ~/.cache/keelson-testenv)
set -euo pipefail

readonly CACHE="${KEELSON_TESTENV_CACHE:-${HOME}/.cache/keelson-testenv}"

# name | Go package@version | binary | environment variable the tests read
readonly TOOLS=(
  "helm|helm.sh/helm/v4/cmd/helm@v4.3.2|helm|KEELSON_HELM_BIN"
  "registry|github.com/distribution/distribution/v3/cmd/registry@v3.1.2|registry|KEELSON_REGISTRY_BIN"
  "jsonnet|github.com/google/go-jsonnet/cmd/jsonnet@v0.22.0|jsonnet|KEELSON_JSONNET_BIN"
  "pebble|github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3|pebble|KEELSON_PEBBLE_BIN"
  "sops|github.com/getsops/sops/v3/cmd/sops@v3.13.2|sops|KEELSON_SOPS_BIN"
)

log() { printf 'tools: %s\n' "$*" >&2; }

field() { # <entry> <index 1..4>
  cut -d'|' -f"$2" <<<"$1"
}

entry() { # <name>
  local t
  for t in "${TOOLS[@]}"; do [[ "$(field "$t" 1)" == "$1" ]] && { echo "$t"; return 0; }; done
  log "unknown tool $1 (known: $(for t in "${TOOLS[@]}"; do printf '%s ' "$(field "$t" 1)"; done))"
  return 1
}

dir_of() { # <entry>: one directory per name and version
  local pkg
  pkg="$(field "$1" 2)"
  echo "${CACHE}/$(field "$1" 1)-${pkg##*@}"
}

build_one() { # <name>
  local e dir bin tmp
  e="$(entry "$1")"
  dir="$(dir_of "$e")"
  bin="${dir}/$(field "$e" 3)"
  [[ -x "${bin}" ]] && return 0
  command -v go >/dev/null 2>&1 || { log "go not found: $1 is built from its Go module (Go >= 1.26)"; return 1; }
  log "building $(field "$e" 2)"
  tmp="${dir}.tmp.$$"
  rm -rf "${tmp}" && mkdir -p "${tmp}"
  if ! (GOBIN="${tmp}" GOTOOLCHAIN=local GOFLAGS=-trimpath CGO_ENABLED=0 go install -ldflags='-s -w' "$(field "$e" 2)"); then
    rm -rf "${tmp}"
    log "building $1 failed"
    return 1
  fi
  rm -rf "${dir}" && mv "${tmp}" "${dir}"
}

cmd="${1:-}"
shift || true
case "${cmd}" in
  build)
    names=("$@")
    if [[ ${#names[@]} -eq 0 ]]; then for t in "${TOOLS[@]}"; do names+=("$(field "$t" 1)"); done; fi
    failed=0
    for n in "${names[@]}"; do build_one "$n" || failed=1; done
    exit "${failed}"
    ;;
  env)
    for t in "${TOOLS[@]}"; do
      bin="$(dir_of "$t")/$(field "$t" 3)"
      [[ -x "${bin}" ]] && printf 'export %s=%q\n' "$(field "$t" 4)" "${bin}"
    done
    exit 0
    ;;
  path)
    e="$(entry "${1:?name}")"
    bin="$(dir_of "$e")/$(field "$e" 3)"
    [[ -x "${bin}" ]] || exit 1
    echo "${bin}"
    ;;
  *)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
