#!/usr/bin/env bash
# Smoke test for scripts/testenv.sh: start the control plane, roll out a Deployment with kubectl
# (create, then a rolling update), delete its namespace, stop. Leaves an already running env running.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
testenv="${here}/testenv.sh"
ns="keelson-smoke-$$"

was_running=false
"${testenv}" status 2>/dev/null && was_running=true
"${testenv}" start
eval "$("${testenv}" env)"

cleanup() {
  kubectl delete namespace "${ns}" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  if [[ "${was_running}" == false ]]; then "${testenv}" stop; fi
}
trap cleanup EXIT

echo "smoke: kubectl $(kubectl version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | paste -sd/ -)"
kubectl create namespace "${ns}"
kubectl -n "${ns}" apply -f - <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.k8s.io/pause:3.10}]
EOF
kubectl -n "${ns}" wait --for=condition=Available deployment/web --timeout=120s
kubectl -n "${ns}" set image deployment/web web=registry.k8s.io/pause:3.9
kubectl -n "${ns}" rollout status deployment/web --timeout=120s
kubectl -n "${ns}" get deployment,pods -o wide
kubectl delete namespace "${ns}" --timeout=120s
echo "smoke: ok"
