#!/usr/bin/env bash
# `make bench` path: the benchmark of issue 5 (see the README's "Benchmark").
#
# Runs dist/bench/run.js, which makes a throw-away SoftHSM2 token under
# results/ (softhsm/init-token.sh, as scripts/run.sh does), measures the
# token's own limit, starts the gateway with scripts/run.sh, loads it with
# wrk, and writes results/bench-<UTC>.{json,md,svg} and results/latest.md.
#
#   BENCH_SECONDS       seconds per measurement (default 8)
#   BENCH_SOAK_SECONDS  the memory soak (default 60)
#   BENCH_KEYS          KMS keys on the token for the key-scaling run (default 1000)
#   BENCH_QUICK=1       a ~2 minute smoke run (2 s runs, 32 connections only, 100 keys)
#   BENCH_KEEP_DATA=1   keep the token, audit log and gateway log
#   KMSGW_WORKERS       gateway worker processes (default: the number of cores)
# Exits non-zero only when the bench itself failed, not when a target is missed.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
[[ -f dist/bench/run.js ]] || { echo "bench.sh: dist/bench/run.js not found; run 'make build'" >&2; exit 1; }
command -v wrk >/dev/null 2>&1 || { echo "bench.sh: wrk not found; run 'make bench-deps'" >&2; exit 1; }
exec node dist/bench/run.js
