#!/usr/bin/env bash
# Flux, the peer of Keelson's Kubernetes target in bench/kubernetes.mjs: source-controller and kustomize-controller,
# built from their Go modules (pinned here) into the same cache as the test control plane, with their CRDs beside.
#
#   bench/peers/flux.sh build    build what is missing (both controllers); fails with a clear message without Go
#   bench/peers/flux.sh env      print export lines for what is built:  eval "$(bench/peers/flux.sh env)"
#   bench/peers/flux.sh path NAME   a binary's path (source-controller | kustomize-controller; exit 1 when not built)
#   bench/peers/flux.sh crds     the directory holding both controllers' CRDs (exit 1 when not built)
#
# The modules carry `replace` directives (their nested `api` module is `./api`), so `go install …@version` refuses
# them: each is built inside a copy of the module with the `api` module of the same version copied into `./api`.
# source-controller v1.9.6 requires github.com/fluxcd/pkg/artifact v0.18.3, which the module proxy reachable here does
# not serve; v0.18.0 is served and builds, so it is pinned with a `replace` (named in BENCHMARKS.md's method).
#
# KEELSON_TESTENV_CACHE  where binaries go, keyed by version (default ~/.cache/keelson-testenv)
set -euo pipefail

readonly CACHE="${KEELSON_TESTENV_CACHE:-${HOME}/.cache/keelson-testenv}"
readonly VERSION="v1.9.6"
readonly DIR="${CACHE}/flux-${VERSION}"
readonly CONTROLLERS=(source-controller kustomize-controller)
WORK=""  # the build's temp dir, removed on exit
# module | go mod edit arguments applied to the copy before building
readonly EDITS_source_controller="-replace=github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v0.18.0"
readonly EDITS_kustomize_controller=""

log() { printf 'flux: %s\n' "$*" >&2; }

built() { [[ -x "${DIR}/source-controller" && -x "${DIR}/kustomize-controller" && -d "${DIR}/crds" ]]; }

module_dir() { # <module@version>: download it and print its directory in the module cache
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

build_one() { # <controller> <work dir>
  local name=$1 work=$2 src api edits var
  src="$(module_dir "github.com/fluxcd/${name}@${VERSION}")"
  api="$(module_dir "github.com/fluxcd/${name}/api@${VERSION}")"
  [[ -n "${src}" && -n "${api}" ]] || { log "cannot download github.com/fluxcd/${name}@${VERSION}"; return 1; }
  cp -r "${src}" "${work}/${name}"
  chmod -R u+w "${work}/${name}"
  rm -rf "${work}/${name}/api"
  cp -r "${api}" "${work}/${name}/api"
  chmod -R u+w "${work}/${name}/api"
  var="EDITS_${name//-/_}"
  edits="${!var}"
  if [[ -n "${edits}" ]]; then
    log "${name}: go mod edit ${edits}"
    (cd "${work}/${name}" && go mod edit ${edits})
  fi
  log "building ${name} ${VERSION} (a few minutes on a busy machine)"
  (cd "${work}/${name}" && GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 \
    go build -trimpath -ldflags='-s -w' -o "${work}/out/${name}" .)
  cp "${work}/${name}"/config/crd/bases/*.yaml "${work}/out/crds/"
}

build() {
  built && return 0
  command -v go >/dev/null 2>&1 || {
    log "go not found: Flux's controllers are built from their Go modules (Go >= 1.26); install Go, then run bench/peers/flux.sh build"
    return 1
  }
  mkdir -p "${CACHE}"
  WORK="$(mktemp -d "${CACHE}/flux-build.XXXXXX")"
  trap 'chmod -R u+w "${WORK}" 2>/dev/null; rm -rf "${WORK}"' EXIT
  mkdir -p "${WORK}/out/crds"
  local c
  for c in "${CONTROLLERS[@]}"; do
    build_one "${c}" "${WORK}" || { log "building ${c} failed"; return 1; }
  done
  rm -rf "${DIR}" && mv "${WORK}/out" "${DIR}"
  log "built into ${DIR}"
}

cmd="${1:-}"
shift || true
case "${cmd}" in
  build) build ;;
  env)
    if built; then
      printf 'export KEELSON_FLUX_SOURCE_BIN=%q\n' "${DIR}/source-controller"
      printf 'export KEELSON_FLUX_KUSTOMIZE_BIN=%q\n' "${DIR}/kustomize-controller"
      printf 'export KEELSON_FLUX_CRDS=%q\n' "${DIR}/crds"
      printf 'export KEELSON_FLUX_VERSION=%q\n' "${VERSION}"
    fi
    ;;
  path)
    name="${1:?name: source-controller | kustomize-controller}"
    [[ " ${CONTROLLERS[*]} " == *" ${name} "* ]] || { log "unknown controller ${name}"; exit 2; }
    [[ -x "${DIR}/${name}" ]] || exit 1
    echo "${DIR}/${name}"
    ;;
  crds)
    built || exit 1
    echo "${DIR}/crds"
    ;;
  *)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
