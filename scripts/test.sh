#!/usr/bin/env bash
# `make test` path: run the compiled mocha suite (dist/test/**/*.test.js, see
# .mocharc.json) against a throwaway SoftHSM2 token.
#
# usage: scripts/test.sh [MOCHA_ARGS...]     e.g. scripts/test.sh --grep oaep
#
# Exports for the tests:
#   SOFTHSM2_CONF           $TMP/hsm/softhsm2.conf (token 'kmsgw-test')
#   KMSGW_TEST_PIN_FILE     $TMP/hsm/pin
#   KMSGW_TEST_TOKEN_LABEL  kmsgw-test
#   KMSGW_TEST_TMP          $TMP (scratch; integration tests create per-gateway
#                           token dirs under it with softhsm/init-token.sh)
# $TMP is removed on exit. Exits with mocha's status.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

MOCHA="$ROOT/node_modules/.bin/mocha"
[[ -x "$MOCHA" ]] || { echo "test.sh: $MOCHA not found; run 'make test-deps'" >&2; exit 1; }
[[ -d "$ROOT/dist/test" ]] || { echo "test.sh: dist/test not found; run 'make build'" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kmsgw-test.XXXXXX")
cleanup() { rm -rf -- "$TMP"; }
trap cleanup EXIT
# Make sure the EXIT trap also runs on Ctrl-C / kill.
trap 'exit 130' INT
trap 'exit 143' TERM

"$ROOT/softhsm/init-token.sh" "$TMP/hsm" kmsgw-test

export SOFTHSM2_CONF="$TMP/hsm/softhsm2.conf"
export KMSGW_TEST_PIN_FILE="$TMP/hsm/pin"
export KMSGW_TEST_TOKEN_LABEL=kmsgw-test
export KMSGW_TEST_TMP="$TMP"

status=0
"$MOCHA" "$@" || status=$?
exit "$status"
