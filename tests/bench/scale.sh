#!/usr/bin/env bash
# Scale benchmark (not run in CI): 10,000 consumers each with a key-auth credential, plus 100
# services, 100 routes and 100 key-auth plugins, against a release `gantry serve` on free
# loopback ports with a temp data dir. Times the first `apply`, a no-change `diff`, and a
# `sync` that changes 1% (50 consumers modified, 50 removed).
#
# With STORE_URL (`postgres://…`), the gateway runs on that PostgreSQL store, on a control
# plane of its own (`bench-PID`), so the database need not be empty.
#
#   cargo build --release && tests/bench/scale.sh [CONSUMERS] [STORE_URL]
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
gantry=${GANTRY:-$root/target/release/gantry}
consumers=${1:-10000}
store=${2:-}
[ -x "$gantry" ] || { echo "build first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
serve_pid=""
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# gen FILE MODIFIED REMOVED: the state file; the first MODIFIED consumers get a new custom_id
# and the last REMOVED consumers are left out.
gen() {
  python3 - "$1" "$consumers" "$2" "$3" <<'PY'
import sys
path, n, modified, removed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out = ['_format_version: "3.0"', "_info:", "  select_tags: [scale]", "services:"]
for s in range(100):
    out += [
        f"  - name: svc-{s}",
        f"    url: http://upstream-{s}.internal:8080",
        "    routes:",
        f"      - name: route-{s}",
        f"        paths: [/svc-{s}]",
        "    plugins:",
        "      - name: key-auth",
        "        config: {key_names: [apikey], hide_credentials: true}",
    ]
out.append("consumers:")
for c in range(n - removed):
    custom = f"changed-{c}" if c < modified else f"id-{c}"
    out += [
        f"  - username: user-{c}",
        f"    custom_id: {custom}",
        "    keyauth_credentials:",
        f"      - key: key-{c:06d}-secret",
    ]
open(path, "w").write("\n".join(out) + "\n")
PY
}

gen "$work/full.yaml" 0 0
changes=$((consumers / 100))
gen "$work/changed.yaml" $((changes / 2)) $((changes - changes / 2))

store_args=()
if [ -n "$store" ]; then
  store_args=(--store "$store" --control-plane "bench-$$")
fi
"$gantry" serve --proxy-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --data-dir "$work/data" "${store_args[@]}" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
  grep -q "admin listening on" "$work/serve.log" && break
  sleep 0.1
done
admin=$(sed -n 's/^gantry: admin listening on //p' "$work/serve.log")
export DECK_KONG_ADDR="http://$admin"

# timed LABEL EXPECTED_EXIT CMD...: runs CMD, checks its exit code, prints the wall time.
timed() {
  local label=$1 expected=$2
  shift 2
  local start end code=0
  start=$(date +%s.%N)
  "$@" >"$work/out" 2>"$work/err" || code=$?
  end=$(date +%s.%N)
  if [ "$code" != "$expected" ]; then
    echo "$label: exit $code (expected $expected)" >&2
    tail -5 "$work/err" >&2
    exit 1
  fi
  printf '%-34s %6.2f s   %s\n' "$label" "$(echo "$end - $start" | bc)" \
    "$(grep -E 'Created|Updated|Deleted' "$work/out" | tr -s ' \n' ' ')"
}

backend=SQLite
[ -n "$store" ] && backend=PostgreSQL
echo "gantry scale benchmark: $consumers consumers + keys, 100 services/routes/plugins ($(nproc) cores), store: $backend"
timed "first apply" 0 "$gantry" apply "$work/full.yaml" --timeout "${TIMEOUT:-60}"
timed "no-change diff" 0 "$gantry" diff "$work/full.yaml" --non-zero-exit-code
timed "sync changing 1% ($changes consumers)" 0 "$gantry" sync "$work/changed.yaml"
timed "no-change diff after sync" 0 "$gantry" diff "$work/changed.yaml" --non-zero-exit-code
timed "reset of the whole scope" 0 "$gantry" reset --select-tag scale --yes --timeout "${TIMEOUT:-60}"
