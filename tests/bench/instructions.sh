#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: the recipe route (key-auth +
# ai-proxy-advanced alias routing) in front of the shared bench's mock upstream, one proxy
# worker, N requests after a warm-up. Unlike CPU time on a shared 2-core machine, the count is
# the same from run to run, so it shows what a change to the hot path costs or saves. It counts
# user-space instructions only: the kernel's share (socket reads and writes) is not in it.
#
#   tests/bench/instructions.sh            # 4000 requests
#   N=10000 tests/bench/instructions.sh
#
# Needs valgrind and oha (../shared/bench/run-peers.sh --install-only installs oha).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bench="${GANTRY_BENCH_DIR:-$root/../shared/bench}"
n="${N:-4000}"
port="${PORT:-18082}"
mock_port="${MOCK_PORT:-19000}"
for tool in valgrind callgrind_control callgrind_annotate oha; do
  command -v "$tool" >/dev/null || { echo "instructions.sh needs $tool" >&2; exit 1; }
done
(cd "$root" && cargo build --release --locked)
(cd "$bench/mock-upstream" && cargo build --release)
run="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$run"; }
trap cleanup EXIT

MOCK_ADDR="127.0.0.1:$mock_port" "$bench/mock-upstream/target/release/mock-upstream" >"$run/mock.log" 2>&1 &
pids+=($!)
cat >"$run/kong.yaml" <<YAML
_format_version: "3.0"
services:
  - name: basic-llm-routing
    url: http://localhost:32000
    routes:
      - name: basic-llm-routing
        paths: [/basic-llm-routing]
    plugins:
      - name: key-auth
        config: {key_names: [apikey], hide_credentials: true}
      - name: ai-proxy-advanced
        config:
          targets:
            - route_type: llm/v1/chat
              auth: {header_name: Authorization, header_value: "Bearer sk-mock-upstream"}
              model: {model_alias: fast, provider: openai, name: gpt-4o-mini, options: {upstream_url: "http://127.0.0.1:$mock_port/v1/chat/completions"}}
            - route_type: llm/v1/chat
              auth: {header_name: Authorization, header_value: "Bearer sk-mock-upstream"}
              model: {model_alias: smart, provider: openai, name: gpt-4o, options: {upstream_url: "http://127.0.0.1:$mock_port/v1/chat/completions"}}
consumers:
  - username: demo-app
    keyauth_credentials: [{key: demo-api-key}]
YAML
valgrind --tool=callgrind --callgrind-out-file="$run/cg.out" --dump-instr=no \
  "$root/target/release/gantry" serve --config "$run/kong.yaml" --data-dir "$run/data" \
  --proxy-listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 --workers 1 >"$run/gantry.log" 2>&1 &
gw=$!
pids+=("$gw")
url="http://127.0.0.1:$port/basic-llm-routing/v1/chat/completions"
load() {
  oha -n "$1" -c 8 --no-tui -m POST -H 'content-type: application/json' -H 'apikey: demo-api-key' \
    -D "$bench/bodies/chat-fast.json" "$url"
}
for _ in $(seq 300); do
  curl -sf -o /dev/null -H 'content-type: application/json' -H 'apikey: demo-api-key' \
    -d @"$bench/bodies/chat-fast.json" "$url" && break
  sleep 0.2
done
load 500 >/dev/null
callgrind_control -z "$gw" >/dev/null 2>&1
load "$n" | grep -E 'Success rate'
callgrind_control -d "$gw" >/dev/null 2>&1
sleep 1
dump="$(ls -t "$run"/cg.out.* | head -1)"
total="$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')"
echo "gantry: $total instructions for $n requests = $((total / n)) per request (user space, one worker)"
