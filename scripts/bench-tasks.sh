#!/usr/bin/env bash
# Durable-task benchmark (issue 17), against a release `omniforge serve` on SQLite and, when
# one answers (OMNIFORGE_TEST_DATABASE_URL or 127.0.0.1:5432), on PostgreSQL, each on a fresh
# database with `examples/hello` published:
#   - throughput: submit → completed for N hello tasks from C connections;
#   - idle queue: submit → working, one task at a time;
#   - watchers: invoke p99 (wrk, 32 connections) idle, then with W Server-Sent Event streams
#     open on the same server.
# The client is host/cli/examples/bench_tasks.rs. Not part of CI; results go to
# docs/performance.md.
#
#   scripts/bench-tasks.sh [tasks, default 20000] [connections, default 32] [watchers, default 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tasks=${1:-20000}
connections=${2:-32}
watchers=${3:-1000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omniforge/target}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release --locked -p omniforge --bin omniforge --example bench_tasks
guest_target="$CARGO_TARGET_DIR/bench-guests"
(cd example-skills/rust && CARGO_TARGET_DIR="$guest_target" cargo build --release --locked --target wasm32-wasip2 -p hello)
bin="$CARGO_TARGET_DIR/release/omniforge"
client="$CARGO_TARGET_DIR/release/examples/bench_tasks"

work=$(mktemp -d)
pids=()
databases=()
admin_url=${OMNIFORGE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for db in "${databases[@]}"; do psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; done
  rm -rf "$work"
}
trap cleanup EXIT

port_of() { # waits for "listening on http://ADDR" in $1
  for _ in $(seq 100); do
    if grep -q 'listening on' "$1" 2>/dev/null; then
      sed -nE 's#.*listening on http://([^/]*)/?$#\1#p' "$1"; return
    fi
    sleep 0.1
  done
  echo "the server did not start" >&2; exit 1
}

start() { # label [database url]: sets $addr and $key
  local label=$1 url=${2:-} dir="$work/$1" tenant
  mkdir -p "$dir"
  export OMNIFORGE_DATA_DIR="$dir"
  if [ -n "$url" ]; then export OMNIFORGE_DATABASE_URL="$url"; else unset OMNIFORGE_DATABASE_URL; fi
  key=$("$bin" admin bootstrap --tenant bench --email bench@example.com)
  OMNIFORGE_LOG=warn OMNIFORGE_RATE_PER_KEY_PER_SECOND=10000000 OMNIFORGE_RATE_PER_KEY_BURST=10000000 \
  OMNIFORGE_RATE_PER_TENANT_PER_SECOND=10000000 OMNIFORGE_RATE_PER_TENANT_BURST=10000000 \
    "$bin" serve --listen 127.0.0.1:0 > "$dir/serve.out" 2> "$dir/serve.log" &
  pids+=($!)
  addr=$(port_of "$dir/serve.out")
  "$bin" skill pack "$root/example-skills/rust/hello" --component "$guest_target/wasm32-wasip2/release/hello.wasm" -o "$dir/hello.zip" > /dev/null
  OMNIFORGE_API_KEY=$key "$bin" skill publish "$dir/hello.zip" --server "http://$addr" > /dev/null
  tenant=$(curl -sf -H "Authorization: Bearer $key" "http://$addr/api/v1/me" | sed -n 's/.*"tenant":{"id":"\([^"]*\)".*/\1/p')
  # One tenant drives the whole load: let it run as many tasks at once as the workers can.
  curl -sf -X PUT -H "Authorization: Bearer $key" -H 'content-type: application/json' \
    -d '{"max_invocations": 1000000000, "max_total_fuel": 100000000000000, "max_queued_tasks": 1000000, "max_running_tasks": 64}' \
    "http://$addr/api/v1/tenants/$tenant/policy" > /dev/null
}

invoke_p99() { # label: wrk against the invoke route of $addr
  cat > "$work/invoke.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"input": {"name": "Ada"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
  local out
  out=$(wrk -t2 -c32 -d10s --latency -s "$work/invoke.lua" "http://$addr/api/v1/skills/examples/hello/invoke")
  printf '%s: invoke %s req/s, p50 %s, p99 %s\n' "$1" \
    "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(echo "$out" | awk '$1 == "50%" {print $2}')" \
    "$(echo "$out" | awk '$1 == "99%" {print $2}')"
}

backends=(sqlite)
if psql "$admin_url" -qAtc 'SELECT 1' > /dev/null 2>&1; then backends+=(postgres); fi
for backend in "${backends[@]}"; do
  echo "== $backend"
  if [ "$backend" = postgres ]; then
    db="omniforge_bench_$$"
    psql "$admin_url" -qc "CREATE DATABASE $db"
    databases+=("$db")
    start "$backend" "${admin_url%/*}/$db"
  else
    start "$backend"
  fi
  "$client" throughput "http://$addr" "$key" "$tasks" "$connections"
  "$client" latency "http://$addr" "$key" 200
  invoke_p99 "no watchers"
  "$client" watchers "http://$addr" "$key" "$watchers" 25 > "$work/watchers.out" &
  pids+=($!)
  for _ in $(seq 300); do grep -q ready "$work/watchers.out" && break; sleep 0.1; done
  cat "$work/watchers.out"
  invoke_p99 "$watchers watchers"
  wait "${pids[-1]}"
  tail -1 "$work/watchers.out"
done
