#!/usr/bin/env bash
# The peer of commit → serving: a classic deploy hook (`git pull && systemctl restart app`), one process on the port.
# Usage: deploy.sh <checkout dir> <port>
set -euo pipefail
dir=$1 port=$2
cd "$dir"
git fetch -q origin
git checkout -q --force origin/main

alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]; }
if [[ -f app.pid ]]; then
  pid=$(cat app.pid)
  kill "$pid" 2>/dev/null || true
  while alive "$pid"; do sleep 0.01; done
fi
PORT=$port nohup node app/server.js >>app.log 2>&1 &
echo $! >app.pid
until curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; do sleep 0.01; done
