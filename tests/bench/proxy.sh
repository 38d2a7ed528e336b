#!/usr/bin/env bash
# Load benchmark of the proxy: the recipe route (key-auth + ai-proxy-advanced alias routing)
# in front of a fast local upstream, side by side with nginx (one plain proxy hop) in the same
# run, using the shared harness in ../shared/bench (wrk for max req/s, oha at a fixed rate for
# latency, /proc for CPU µs per request and RSS). Not run in CI: it takes ~5 minutes per round.
#
#   tests/bench/proxy.sh                       # direct + nginx + gantry, 1 round
#   ROUNDS=2 TARGETS="direct nginx gantry litellm portkey" tests/bench/proxy.sh
#   OBSERVED=1 tests/bench/proxy.sh            # adds target gantry-observed: the same route
#                                              # with prometheus + file-log (see below)
#
# gantry-observed is the shared `gantry` target with, on top: `logging.log_statistics` on both
# targets, a global `prometheus` (per_consumer and every metric switch on) and a global
# `file-log` writing to the run directory. It runs on its own ports from a private view of the
# harness (symlinks; the shared directory is not modified). Compare its CPU µs per request with
# `gantry`'s: the budget is 1.25x.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bench="${GANTRY_BENCH_DIR:-$root/../shared/bench}"
[ -x "$bench/run-peers.sh" ] || { echo "no bench harness at $bench (set GANTRY_BENCH_DIR)" >&2; exit 1; }
(cd "$root" && cargo build --release --locked)
export GANTRY_BIN="$root/target/release/gantry"
export TARGETS="${TARGETS:-direct nginx gantry}"
export ROUNDS="${ROUNDS:-1}"
if [ "${OBSERVED:-0}" = 1 ]; then
  bench="$(cd "$bench" && pwd)"
  view="$(mktemp -d "${TMPDIR:-/tmp}/gantry-bench-view.XXXXXX")"
  trap 'rm -rf "$view"' EXIT
  for entry in "$bench"/*; do
    [ "$(basename "$entry")" = targets ] || ln -s "$entry" "$view/$(basename "$entry")"
  done
  mkdir -p "$view/targets/gantry-observed"
  for t in "$bench"/targets/*; do ln -s "$t" "$view/targets/$(basename "$t")"; done
  # The gantry target, its config extended: log_statistics on each target, then the two
  # global plugins before `consumers:`.
  sed -e 's/^TARGET_DESC=.*/TARGET_DESC="gantry serve: the recipe route + prometheus + file-log"/' \
      -e 's/GANTRY_PORT:-8082/GANTRY_OBSERVED_PORT:-8092/; s/GANTRY_ADMIN_PORT:-8083/GANTRY_OBSERVED_ADMIN_PORT:-8093/' \
      -e 's/^\( *\)- route_type: llm\/v1\/chat$/&\n\1  logging: {log_statistics: true}/' \
      -e 's|^consumers:$|plugins:\n  - name: prometheus\n    config: {per_consumer: true, status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true, ai_metrics: true}\n  - name: file-log\n    config: {path: "$run/access.log"}\n&|' \
      "$bench/targets/gantry/target.sh" > "$view/targets/gantry-observed/target.sh"
  grep -q 'name: prometheus' "$view/targets/gantry-observed/target.sh" \
    || { echo "could not derive gantry-observed from $bench/targets/gantry/target.sh" >&2; exit 1; }
  case " $TARGETS " in *" gantry-observed "*) ;; *) TARGETS="$TARGETS gantry-observed" ;; esac
  export RESULTS_DIR="${RESULTS_DIR:-$bench/results/$(date -u +%Y%m%dT%H%M%SZ)}"
  "$view/run-peers.sh" "$@"
  exit
fi
exec "$bench/run-peers.sh" "$@"
