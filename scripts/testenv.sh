#!/usr/bin/env bash
# A real Kubernetes control plane for Keelson's tests, without Docker:
# etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok (fake nodes/pods),
# all built from Go modules (scripts/testenv/*/go.mod) and listening on 127.0.0.1 only.
#
#   scripts/testenv.sh start    build what is missing, start, wait until a Deployment can become Available
#   scripts/testenv.sh env      print export lines:  eval "$(scripts/testenv.sh env)"
#   scripts/testenv.sh status   exit 0 if running and healthy
#   scripts/testenv.sh stop     stop exactly the processes that start launched
#   scripts/testenv.sh build    only build the binaries
#
# KEELSON_TESTENV_CACHE  binaries, keyed by version (default ~/.cache/keelson-testenv)
# KEELSON_TESTENV_DIR    runtime state: pki, etcd data, logs, pids, kubeconfig (default $CACHE/run)
set -euo pipefail

readonly SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/testenv"
readonly CACHE="${KEELSON_TESTENV_CACHE:-${HOME}/.cache/keelson-testenv}"
readonly RUN="${KEELSON_TESTENV_DIR:-${CACHE}/run}"
readonly COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
readonly SERVICE_CIDR=10.0.0.0/24
readonly PROBE_IMAGE=registry.k8s.io/pause:3.10

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Versions come from the wrapper go.mod files, the single source of truth.
mod_version() { # <go.mod> <module>
  awk -v m="$2" '($1 == m || ($1 == "require" && $2 == m)) { v = ($1 == m) ? $2 : $3; print v; exit }' "$1"
}
readonly KUBE_VERSION="$(mod_version "${SRC_DIR}/kube/go.mod" k8s.io/kubernetes)"
readonly ETCD_VERSION="$(mod_version "${SRC_DIR}/etcd/go.mod" go.etcd.io/etcd/server/v3)"
readonly KWOK_VERSION="$(mod_version "${SRC_DIR}/kwok/go.mod" sigs.k8s.io/kwok)"
[[ -n "${KUBE_VERSION}" && -n "${ETCD_VERSION}" && -n "${KWOK_VERSION}" ]] ||
  die "cannot read versions from ${SRC_DIR}/{kube,etcd,kwok}/go.mod"
readonly KUBE_BIN="${CACHE}/kube-${KUBE_VERSION}/bin"
readonly ETCD_BIN="${CACHE}/etcd-${ETCD_VERSION}/bin"
readonly KWOK_DIR="${CACHE}/kwok-${KWOK_VERSION}"
readonly KUBECONFIG_PATH="${RUN}/kubeconfig"

# ---------------------------------------------------------------- build

require_go() {
  command -v go >/dev/null 2>&1 ||
    die "go not found: the Kubernetes suite needs Go >= 1.26 to build its control plane"
  local v
  v="$(go env GOVERSION)"
  [[ "${v}" =~ ^go1\.([0-9]+) ]] && (( BASH_REMATCH[1] >= 26 )) ||
    die "${v} is too old: the Kubernetes suite needs Go >= 1.26 to build its control plane"
}

go_build() { # <module dir> <output (dir/ or file)> <ldflags> <packages...>
  local dir="$1" out="$2" ldflags="$3"
  shift 3
  (cd "${dir}" && CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=readonly -trimpath -buildvcs=false" \
    go build -o "${out}" -ldflags "-s -w ${ldflags}" "$@")
}

# Builds into a temporary dir and renames it, so a cache dir exists only when complete.
build_kube() {
  [[ -x "${KUBE_BIN}/kubectl" ]] && return 0
  require_go
  log "building kubernetes ${KUBE_VERSION} (cold build takes a long time)"
  local tmp="${KUBE_BIN}.tmp.$$" minor
  minor="$(cut -d. -f2 <<<"${KUBE_VERSION}")"
  rm -rf "${tmp}" && mkdir -p "${tmp}"
  local x=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X ${p}.gitVersion=${KUBE_VERSION} -X ${p}.gitMajor=1 -X ${p}.gitMinor=${minor} -X ${p}.gitTreeState=clean"
  done
  go_build "${SRC_DIR}/kube" "${tmp}/" "${x}" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  mv "${tmp}" "${KUBE_BIN}"
}

build_etcd() {
  [[ -x "${ETCD_BIN}/etcd" ]] && return 0
  require_go
  log "building etcd ${ETCD_VERSION}"
  local tmp="${ETCD_BIN}.tmp.$$"
  rm -rf "${tmp}" && mkdir -p "${tmp}"
  go_build "${SRC_DIR}/etcd" "${tmp}/etcd" "" go.etcd.io/etcd/server/v3
  mv "${tmp}" "${ETCD_BIN}"
}

# kwok also needs its stage definitions, shipped in the module; copy them beside the binary.
build_kwok() {
  [[ -x "${KWOK_DIR}/bin/kwok" ]] && return 0
  require_go
  log "building kwok ${KWOK_VERSION}"
  local tmp="${KWOK_DIR}.tmp.$$" mod
  rm -rf "${tmp}" && mkdir -p "${tmp}/bin" "${tmp}/stages"
  go_build "${SRC_DIR}/kwok" "${tmp}/bin/kwok" "" sigs.k8s.io/kwok/cmd/kwok
  mod="$(cd "${SRC_DIR}/kwok" && GOWORK=off GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  local s
  for s in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    cp "${mod}/kustomize/stage/${s}.yaml" "${tmp}/stages/"
  done
  rm -rf "${KWOK_DIR}"
  mv "${tmp}" "${KWOK_DIR}"
}

build_all() {
  mkdir -p "${CACHE}"
  exec 8>"${CACHE}/build.lock"
  flock -w 7200 8 || die "another testenv.sh is building into ${CACHE} (lock ${CACHE}/build.lock)"
  build_etcd
  build_kwok
  build_kube
  exec 8>&-
}

# ---------------------------------------------------------------- processes

pid_file() { echo "${RUN}/pids/$1.pid"; }

# Start time in clock ticks since boot (field 22 of /proc/PID/stat); guards against PID reuse.
start_time() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  awk '$1 != "Z" { print $20; ok = 1 } END { exit !ok }' <<<"${stat##*) }"
}

# Prints the PID of a component if the recorded process is still the one we started.
live_pid() {
  local f pid st now
  f="$(pid_file "$1")"
  [[ -f "${f}" ]] || return 1
  read -r pid st <"${f}" || return 1
  now="$(start_time "${pid}")" || return 1
  [[ "${now}" == "${st}" ]] || return 1
  echo "${pid}"
}

launch() { # <name> <binary> <args...>
  local name="$1" bin="$2"
  shift 2
  # setsid: own session, so a terminal's Ctrl-C or a test runner's group kill does not reach it.
  # 9>&- : the daemon must not inherit (and so hold) the state lock.
  setsid "${bin}" "$@" </dev/null >"${RUN}/logs/${name}.log" 2>&1 9>&- &
  local pid=$!
  echo "${pid} $(start_time "${pid}")" >"$(pid_file "${name}")"
}

# Reverse start order: clients first, so kube-apiserver has no watches to drain and etcd goes last.
stop_all() {
  local i name pid stopped=()
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    name="${COMPONENTS[i]}"
    pid="$(live_pid "${name}")" || continue
    kill -TERM "${pid}" 2>/dev/null || true
    wait_exit "${name}" 15 || {
      log "${name} (pid ${pid}) did not exit on SIGTERM; sending SIGKILL"
      kill -KILL "${pid}" 2>/dev/null || true
      wait_exit "${name}" 5 || log "${name} (pid ${pid}) survived SIGKILL"
    }
    stopped+=("${name}:${pid}")
  done
  for name in "${COMPONENTS[@]}"; do rm -f "$(pid_file "${name}")"; done
  ((${#stopped[@]} == 0)) || log "stopped ${stopped[*]}"
}

wait_exit() { # <name> <timeout s>
  local deadline=$((SECONDS + $2))
  while live_pid "$1" >/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# ---------------------------------------------------------------- health

# Sets the named variables to distinct ports in 10000-32767 (below the ephemeral range) with no
# listener on 127.0.0.1.
pick_ports() {
  local picked=" " var p
  for var in "$@"; do
    for _ in $(seq 200); do
      p=$((10000 + RANDOM % 22768))
      [[ "${picked}" == *" ${p} "* ]] && continue
      (exec 3<>"/dev/tcp/127.0.0.1/${p}") 2>/dev/null && continue
      picked+="${p} "
      printf -v "${var}" '%s' "${p}"
      continue 2
    done
    die "no free port found on 127.0.0.1"
  done
}

http_ok() { curl -fsS --max-time 3 "$@" >/dev/null 2>&1; }
api_ok() {
  http_ok --cacert "${RUN}/pki/ca.crt" --cert "${RUN}/pki/admin.crt" --key "${RUN}/pki/admin.key" \
    "https://127.0.0.1:${API_PORT}$1"
}

load_state() { [[ -f "${RUN}/state.env" ]] && source "${RUN}/state.env"; }

healthy() {
  local name
  for name in "${COMPONENTS[@]}"; do live_pid "${name}" >/dev/null || return 1; done
  load_state || return 1
  http_ok "http://127.0.0.1:${ETCD_PORT}/health" &&
    api_ok /readyz &&
    http_ok -k "https://127.0.0.1:${KCM_PORT}/healthz" &&
    http_ok -k "https://127.0.0.1:${SCHED_PORT}/healthz" &&
    http_ok "http://127.0.0.1:${KWOK_PORT}/healthz"
}

# wait_for <what> <timeout s> <component whose death aborts the wait> <command...>
wait_for() {
  local what="$1" timeout="$2" comp="$3"
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null; do
    live_pid "${comp}" >/dev/null || fail "${comp} exited while waiting for ${what}"
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for ${what}"
    sleep 0.5
  done
}

fail() {
  log "start failed: $*"
  local name
  for name in "${COMPONENTS[@]}"; do
    [[ -s "${RUN}/logs/${name}.log" ]] || continue
    printf '\n==> %s <==\n' "${RUN}/logs/${name}.log" >&2
    tail -n 25 "${RUN}/logs/${name}.log" >&2
  done
  log "logs: ${RUN}/logs"
  stop_all
  exit 1
}

# ---------------------------------------------------------------- setup

gen_pki() {
  local d="${RUN}/pki"
  rm -rf "${d}" && mkdir -p "${d}"
  (
    cd "${d}"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt \
      -subj "/CN=keelson-testenv-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out apiserver.crt \
      -extfile <(printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" \
        "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1") 2>/dev/null
    local name subj
    for name in admin front-proxy-client; do
      subj="/CN=${name}"
      [[ "${name}" == admin ]] && subj="/O=system:masters/CN=admin"
      openssl req -newkey rsa:2048 -nodes -keyout "${name}.key" -out "${name}.csr" -subj "${subj}" 2>/dev/null
      openssl x509 -req -in "${name}.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out "${name}.crt" \
        -extfile <(printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=clientAuth") 2>/dev/null
    done
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ca.srl
  ) || die "openssl failed to generate certificates in ${d}"
}

write_kubeconfig() {
  local b64="base64 -w0"
  cat >"${KUBECONFIG_PATH}.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: keelson-testenv
  cluster:
    server: https://127.0.0.1:${API_PORT}
    certificate-authority-data: $(${b64} "${RUN}/pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(${b64} "${RUN}/pki/admin.crt")
    client-key-data: $(${b64} "${RUN}/pki/admin.key")
contexts:
- name: keelson-testenv
  context: {cluster: keelson-testenv, user: admin}
current-context: keelson-testenv
EOF
  mv "${KUBECONFIG_PATH}.tmp" "${KUBECONFIG_PATH}"
}

kubectl_() { "${KUBE_BIN}/kubectl" --kubeconfig "${KUBECONFIG_PATH}" "$@"; }

# Proves the whole chain: controllers, scheduler, kwok node and pod stages, namespace deletion.
probe_deployment() {
  local ns="keelson-testenv-probe-$$"
  kubectl_ create namespace "${ns}" >/dev/null || fail "cannot create namespace ${ns}"
  wait_for "service account ${ns}/default" 60 kube-controller-manager \
    kubectl_ -n "${ns}" get serviceaccount default -o name --request-timeout=5s
  kubectl_ -n "${ns}" apply -f - >/dev/null <<EOF || fail "cannot create the probe Deployment"
apiVersion: apps/v1
kind: Deployment
metadata: {name: probe}
spec:
  replicas: 1
  selector: {matchLabels: {app: probe}}
  template:
    metadata: {labels: {app: probe}}
    spec:
      containers: [{name: probe, image: ${PROBE_IMAGE}}]
EOF
  kubectl_ -n "${ns}" wait --for=condition=Available deployment/probe --timeout=180s >/dev/null ||
    fail "probe Deployment ${ns}/probe did not become Available: $(kubectl_ -n "${ns}" get deploy,rs,pods,nodes -o wide 2>&1)"
  kubectl_ delete namespace "${ns}" --timeout=120s >/dev/null || fail "namespace ${ns} was not deleted"
}

start() {
  build_all
  mkdir -p "${RUN}/pids" "${RUN}/logs"
  exec 9>"${RUN}/lock"
  flock -w 600 9 || die "another testenv.sh holds ${RUN}/lock"
  if healthy; then
    log "already running (kubernetes ${KUBE_VERSION}); KUBECONFIG=${KUBECONFIG_PATH}"
    return 0
  fi
  stop_all # leftovers of a partial or crashed run
  log "starting control plane in ${RUN}"
  rm -rf "${RUN}/etcd-data" "${RUN}/logs" "${RUN}/state.env" "${KUBECONFIG_PATH}"
  mkdir -p "${RUN}/logs"
  gen_pki

  pick_ports ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT
  local v
  for v in ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT; do
    echo "${v}=${!v}"
  done >"${RUN}/state.env"
  write_kubeconfig

  local etcd_url="http://127.0.0.1:${ETCD_PORT}" peer_url="http://127.0.0.1:${ETCD_PEER_PORT}"
  launch etcd "${ETCD_BIN}/etcd" --name=node0 --data-dir="${RUN}/etcd-data" \
    --listen-client-urls="${etcd_url}" --advertise-client-urls="${etcd_url}" \
    --listen-peer-urls="${peer_url}" --initial-advertise-peer-urls="${peer_url}" \
    --initial-cluster="node0=${peer_url}" \
    --unsafe-no-fsync=true --auto-compaction-retention=1 --log-level=warn
  wait_for "etcd ${etcd_url}/health" 60 etcd http_ok "${etcd_url}/health"

  local pki="${RUN}/pki"
  launch kube-apiserver "${KUBE_BIN}/kube-apiserver" \
    --etcd-servers="${etcd_url}" --etcd-prefix=/registry \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="${API_PORT}" \
    --endpoint-reconciler-type=none \
    --tls-cert-file="${pki}/apiserver.crt" --tls-private-key-file="${pki}/apiserver.key" \
    --client-ca-file="${pki}/ca.crt" \
    --service-cluster-ip-range="${SERVICE_CIDR}" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="${pki}/sa.pub" --service-account-signing-key-file="${pki}/sa.key" \
    --requestheader-client-ca-file="${pki}/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="${pki}/front-proxy-client.crt" --proxy-client-key-file="${pki}/front-proxy-client.key" \
    --authorization-mode=RBAC --allow-privileged=true --profiling=false
  wait_for "kube-apiserver https://127.0.0.1:${API_PORT}/readyz" 120 kube-apiserver api_ok /readyz

  local auth=(--kubeconfig="${KUBECONFIG_PATH}" --authentication-kubeconfig="${KUBECONFIG_PATH}"
    --authorization-kubeconfig="${KUBECONFIG_PATH}" --bind-address=127.0.0.1 --leader-elect=false)
  launch kube-controller-manager "${KUBE_BIN}/kube-controller-manager" "${auth[@]}" \
    --secure-port="${KCM_PORT}" --service-cluster-ip-range="${SERVICE_CIDR}" \
    --service-account-private-key-file="${pki}/sa.key" --root-ca-file="${pki}/ca.crt" \
    --node-monitor-period=5s --node-monitor-grace-period=40s \
    --kube-api-qps=200 --kube-api-burst=400 --concurrent-deployment-syncs=20 --concurrent-replicaset-syncs=20
  # Client rate limits above the defaults (20 and 50 QPS): with them the controllers, not the tool under test,
  # bound how fast a thousand Deployments become Available (bench/kubernetes.mjs).
  launch kube-scheduler "${KUBE_BIN}/kube-scheduler" "${auth[@]}" --secure-port="${SCHED_PORT}" \
    --kube-api-qps=200 --kube-api-burst=400

  local stages=()
  for s in "${KWOK_DIR}"/stages/*.yaml; do stages+=(--config="${s}"); done
  launch kwok "${KWOK_DIR}/bin/kwok" --kubeconfig="${KUBECONFIG_PATH}" --manage-all-nodes=true \
    "${stages[@]}" --cidr=10.244.0.0/16 --node-lease-duration-seconds=40 \
    --server-address="127.0.0.1:${KWOK_PORT}"

  kubectl_ apply -f - >/dev/null <<EOF || fail "cannot create the fake node"
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/os: linux, kubernetes.io/arch: amd64, kubernetes.io/hostname: kwok-node-0, type: kwok}
EOF
  wait_for "kube-controller-manager /healthz" 60 kube-controller-manager http_ok -k "https://127.0.0.1:${KCM_PORT}/healthz"
  wait_for "kube-scheduler /healthz" 60 kube-scheduler http_ok -k "https://127.0.0.1:${SCHED_PORT}/healthz"
  wait_for "kwok /healthz" 60 kwok http_ok "http://127.0.0.1:${KWOK_PORT}/healthz"
  probe_deployment
  log "ready (kubernetes ${KUBE_VERSION}, etcd ${ETCD_VERSION}, kwok ${KWOK_VERSION}); KUBECONFIG=${KUBECONFIG_PATH}"
  log "use it with: eval \"\$(scripts/testenv.sh env)\""
}

print_env() {
  [[ -f "${KUBECONFIG_PATH}" ]] || log "not started yet: run scripts/testenv.sh start"
  printf 'export KUBECONFIG=%q\n' "${KUBECONFIG_PATH}"
  printf 'export PATH=%q:"$PATH"\n' "${KUBE_BIN}"
}

status() {
  if healthy; then
    log "running (kubernetes ${KUBE_VERSION}); apiserver https://127.0.0.1:${API_PORT}; KUBECONFIG=${KUBECONFIG_PATH}"
  else
    log "not running (or unhealthy); logs: ${RUN}/logs"
    return 1
  fi
}

stop() {
  mkdir -p "${RUN}/pids"
  exec 9>"${RUN}/lock"
  flock -w 60 9 || die "another testenv.sh holds ${RUN}/lock"
  stop_all
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  status) status ;;
  build) build_all ;;
  *) die "usage: $0 start|stop|env|status|build" ;;
esac
