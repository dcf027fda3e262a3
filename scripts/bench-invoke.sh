#!/usr/bin/env bash
# Load benchmark (issue 5): POST /api/v1/skills/examples/hello/invoke through `omniforge
# serve` (API-key auth, tenant policy limits, an invocation quota, metering and rate limits
# all on), and the same invocation as an MCP `tools/call` to its `/mcp` (issue 16), against
# a bare axum handler answering the same JSON and, when `wasmtime` is on the PATH
# (`cargo install wasmtime-cli --version 48.0.8 --locked`), against `wasmtime serve`
# running the same logic as a wasi:http component (scripts/bench/http-hello) with a fresh
# instance per request. Driven by wrk from another process on loopback; targets take turns
# run after run, so drifting machine load spreads over all of them. Prints every run and the
# median per target and concurrency. Not part of CI. Results go to docs/performance.md.
# With OMNIFORGE_BASELINE=/path/to/an/older/omniforge, that binary runs as one more target
# ("baseline") beside this tree's, so a change is measured before and after in one run.
# With OMNIFORGE_BENCH_OBSERVABILITY=1 (issue 19), the targets are this tree's binary twice:
# "obs off" (metrics off, no traces) and "obs on" (metrics on and scraped every second,
# traces exported to an OTLP/HTTP receiver on loopback), to measure what observing costs.
# With OMNIFORGE_BENCH_REDIS=1 (issue 20), the targets are this tree's binary twice: "memory"
# (limits and quotas counted in the process) and "redis" (shared through a redis-server the
# script starts on a free port, as several replicas would), and each "redis" run also prints
# the Redis round trips it caused per request (script calls and other top-level commands).
# With OMNIFORGE_BENCH_BARE=0 the bare axum target is left out (its example's release build
# also builds the test guests in release, which takes long on a cold cache).
#
#   scripts/bench-invoke.sh [seconds per run, default 10] [concurrencies, default "1 8 32 64"]
#                           [runs, default 1]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
duration=${1:-10}
concurrencies=${2:-"1 8 32 64"}
runs=${3:-1}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omniforge/target}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release --locked -p omniforge
bare_target=${OMNIFORGE_BENCH_BARE:-1}
if [ "$bare_target" != 0 ]; then
  cargo build --release --locked -p omniforge-server --example bare_hello
fi
guest_target="$CARGO_TARGET_DIR/bench-guests"
(cd example-skills/rust && CARGO_TARGET_DIR="$guest_target" cargo build --release --locked --target wasm32-wasip2 -p hello)
peer=$(command -v wasmtime || true)
if [ -n "$peer" ]; then
  (cd scripts/bench/http-hello && CARGO_TARGET_DIR="$guest_target" cargo build --release --locked --target wasm32-wasip2)
fi
bin="$CARGO_TARGET_DIR/release/omniforge"
bare="$CARGO_TARGET_DIR/release/examples/bare_hello"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"

port_of() { # waits for "listening on http://ADDR" (or wasmtime's "Serving HTTP on") in $1
  for _ in $(seq 100); do
    if grep -qE 'listening on|Serving HTTP on' "$1" 2>/dev/null; then
      sed -nE 's#.*(listening on|Serving HTTP on) http://([^/]*)/?$#\2#p' "$1"; return
    fi
    sleep 0.1
  done
  echo "the server did not start" >&2; exit 1
}

targets=()
start_omniforge() { # label binary [VAR=value…]: a fresh server in its own data directory,
  # hello published, with the extra variables set
  local label=$1 binary=$2 dir="$work/$1" key addr tenant
  shift 2
  local extra=("$@")
  mkdir -p "$dir"
  key=$(OMNIFORGE_DATA_DIR="$dir" "$binary" admin bootstrap --tenant bench --email bench@example.com)
  # Rate limits stay on, set far above the offered load so they are checked but never bind.
  OMNIFORGE_DATA_DIR="$dir" OMNIFORGE_LOG=warn OMNIFORGE_RATE_PER_KEY_PER_SECOND=10000000 \
  OMNIFORGE_RATE_PER_KEY_BURST=10000000 OMNIFORGE_RATE_PER_TENANT_PER_SECOND=10000000 \
  OMNIFORGE_RATE_PER_TENANT_BURST=10000000 \
    env "${extra[@]}" "$binary" serve --listen 127.0.0.1:0 > "$dir/serve.out" 2> "$dir/serve.log" &
  pids+=($!)
  addr=$(port_of "$dir/serve.out")
  "$binary" skill pack "$root/example-skills/rust/hello" --component "$guest_target/wasm32-wasip2/release/hello.wasm" -o "$dir/hello.zip" > /dev/null
  OMNIFORGE_API_KEY=$key "$binary" skill publish "$dir/hello.zip" --server "http://$addr"
  tenant=$(curl -sf -H "Authorization: Bearer $key" "http://$addr/api/v1/me" | sed -n 's/.*"tenant":{"id":"\([^"]*\)".*/\1/p')
  curl -sf -X PUT -H "Authorization: Bearer $key" -H 'content-type: application/json' \
    -d '{"max_invocations": 1000000000, "max_total_fuel": 100000000000000}' \
    "http://$addr/api/v1/tenants/$tenant/policy" > /dev/null
  OMNIFORGE_API_KEY=$key "$binary" skill invoke examples/hello --input '{"name": "Ada"}' --server "http://$addr"
  cat > "$dir/invoke.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"input": {"name": "Ada"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
  targets+=("$label|http://$addr/api/v1/skills/examples/hello/invoke|$dir/invoke.lua")
  # The same invocation as an MCP tools/call (stateless 2026-07-28: the version and client
  # capabilities in `_meta`, the standard headers), through the same server (issue 16; a
  # baseline older than that answers non-2xx here).
  cat > "$dir/mcp.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"examples.hello","arguments":{"name":"Ada"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"1"}}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "examples.hello"
wrk.headers["Authorization"] = "Bearer $key"
LUA
  # A tool error would still be HTTP 200: check once that the call really succeeds.
  curl -sf -X POST "http://$addr/mcp" -H "Authorization: Bearer $key" \
    -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
    -H 'mcp-protocol-version: 2026-07-28' -H 'mcp-method: tools/call' \
    -H 'mcp-name: examples.hello' --data-binary @<(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$dir/mcp.lua") \
    | grep -q '"isError":false' || {
      echo "$label answers tools/call with an error" >&2
      [ "$label" != omniforge ] || exit 1
    }
  targets+=("$label mcp|http://$addr/mcp|$dir/mcp.lua")
}
if [ -n "${OMNIFORGE_BENCH_OBSERVABILITY:-}" ]; then
  # An OTLP/HTTP receiver that accepts every export, as a collector would.
  python3 -c '
import http.server, socketserver
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print("listening on http://127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()' > otlp.out &
  pids+=($!)
  otlp=$(port_of otlp.out)
  start_omniforge "obs off" "$bin" OMNIFORGE_METRICS=off
  start_omniforge "obs on" "$bin" OMNIFORGE_METRICS=on "OMNIFORGE_OTLP_ENDPOINT=http://$otlp"
  # Scraped every second, as Prometheus would.
  obs_on=$(port_of "$work/obs on/serve.out")
  (while curl -sf "http://$obs_on/metrics" > /dev/null; do sleep 1; done) &
  pids+=($!)
elif [ -n "${OMNIFORGE_BENCH_REDIS:-}" ]; then
  command -v redis-server >/dev/null || { echo "redis-server is missing" >&2; exit 1; }
  redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no > redis.log &
  pids+=($!)
  until redis-cli -p "$redis_port" ping > /dev/null 2>&1; do sleep 0.1; done
  start_omniforge memory "$bin"
  start_omniforge redis "$bin" "OMNIFORGE_REDIS_URL=redis://127.0.0.1:$redis_port"
else
  start_omniforge omniforge "$bin"
  if [ -n "${OMNIFORGE_BASELINE:-}" ]; then
    start_omniforge baseline "$OMNIFORGE_BASELINE"
  fi
fi
cat > plain.lua <<LUA
wrk.method = "POST"
wrk.body = '{"input": {"name": "Ada"}}'
wrk.headers["Content-Type"] = "application/json"
LUA

if [ "$bare_target" != 0 ]; then
  "$bare" > bare.out &
  pids+=($!)
  bare_addr=$(port_of bare.out)
  targets+=("bare axum|http://$bare_addr/invoke|$work/plain.lua")
fi
if [ -n "$peer" ]; then
  "$peer" serve -Scli --addr 127.0.0.1:0 "$guest_target/wasm32-wasip2/release/http_hello.wasm" 2> peer.out &
  pids+=($!)
  peer_addr=$(port_of peer.out)
  curl -sf -d '{"input": {"name": "Ada"}}' "http://$peer_addr/" > /dev/null
  targets+=("wasmtime serve|http://$peer_addr/|$work/plain.lua")
fi

redis_calls() { # round trips so far: script calls (EVALSHA, EVAL) and change publications;
  # the commands a script runs inside Redis are counted apart by INFO
  redis-cli -p "$redis_port" info commandstats \
    | sed -n 's/^cmdstat_\(evalsha\|eval\|publish\):calls=\([0-9]*\),.*/\2/p' \
    | awk '{ n += $1 } END { print n + 0 }'
}

run() { # label url connections script: one wrk run, appended to results.txt
  local out before=""
  local threads=$(( $3 < 2 ? $3 : 2 ))
  [ "${1%% *}" != redis ] || before=$(redis_calls)
  out=$(wrk -t"$threads" -c"$3" -d"${duration}s" --latency -s "$4" "$2")
  if [ -n "$before" ]; then
    local calls=$(( $(redis_calls) - before ))
    local requests
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$1: $calls redis round trips for $requests requests" \
      "($(python3 -c "print(f'{$calls / max($requests, 1):.3f}')") per request)" >> redis.txt
  fi
  local rps p50 p99 errors
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  errors=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  printf '| %-14s | %3s | %10s | %8s | %8s | %s |\n' "$1" "$3" "$rps" "$p50" "$p99" "${errors:-0}" | tee -a results.txt
}

echo
echo "| target         |   c |      req/s |      p50 |      p99 | non-2xx |"
echo "| ---            | --- |        --- |      --- |      --- | ---     |"
for c in $concurrencies; do
  for _ in $(seq "$runs"); do
    for target in "${targets[@]}"; do
      IFS='|' read -r label url script <<< "$target"
      run "$label" "$url" "$c" "$script"
    done
  done
done

if [ -f redis.txt ]; then
  echo
  cat redis.txt
fi

if [ "$runs" -gt 1 ]; then
  echo
  echo "Medians of $runs runs:"
  python3 - results.txt <<'PY'
import re, statistics, sys
def ms(text):  # wrk prints 812.00us, 1.23ms or 1.02s
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rows = {}
for line in open(sys.argv[1]):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    rows.setdefault((cells[0], int(cells[1])), []).append(cells)
print("| target         |   c | median req/s | median p50 | median p99 | runs |")
print("| ---            | --- |          --- |        --- |        --- | ---  |")
for (target, c), runs in rows.items():
    rps = statistics.median(float(r[2]) for r in runs)
    p50 = statistics.median(ms(r[3]) for r in runs)
    p99 = statistics.median(ms(r[4]) for r in runs)
    print(f"| {target:<14} | {c:3} | {rps:12,.0f} | {p50:7.2f} ms | {p99:7.2f} ms | {len(runs):4} |")
PY
fi
