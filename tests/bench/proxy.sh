#!/usr/bin/env bash
# Load benchmark of the proxy: the recipe route (key-auth + ai-proxy-advanced alias routing)
# in front of a fast local upstream, side by side with nginx (one plain proxy hop) in the same
# run, using the shared harness in ../shared/bench (wrk for max req/s, oha at a fixed rate for
# latency, /proc for CPU µs per request and RSS). Not run in CI: it takes ~5 minutes per round.
#
#   tests/bench/proxy.sh                       # direct + nginx + gantry, 1 round
#   ROUNDS=2 TARGETS="direct nginx gantry litellm portkey" tests/bench/proxy.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bench="${GANTRY_BENCH_DIR:-$root/../shared/bench}"
[ -x "$bench/run-peers.sh" ] || { echo "no bench harness at $bench (set GANTRY_BENCH_DIR)" >&2; exit 1; }
(cd "$root" && cargo build --release --locked)
export GANTRY_BIN="$root/target/release/gantry"
export TARGETS="${TARGETS:-direct nginx gantry}"
export ROUNDS="${ROUNDS:-1}"
exec "$bench/run-peers.sh" "$@"
