#!/usr/bin/env bash
# `make run` path: start the gateway from dist/.
#
#   KMSGW_DATA_DIR  data directory (default <repo>/.data); exported absolute.
#   KMSGW_CONFIG    unset: embedded SoftHSM2 dev default -- a 'kmsgw-dev' token
#                   is set up under $KMSGW_DATA_DIR (softhsm/init-token.sh),
#                   SOFTHSM2_CONF points at it, config/default.json is used.
#                   set: the operator's config (own module/token); SoftHSM is
#                   not touched.
#   KMSGW_PORT      read by the gateway itself (default 8080 on 127.0.0.1).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

# Resolve relative paths against the caller's directory, before cd'ing.
abspath() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}

DATA_DIR=$(abspath "${KMSGW_DATA_DIR:-$ROOT/.data}")
export KMSGW_DATA_DIR="$DATA_DIR"

if [[ -z "${KMSGW_CONFIG:-}" ]]; then
  "$ROOT/softhsm/init-token.sh" "$DATA_DIR" kmsgw-dev
  # init-token.sh may have created it; now it can be canonicalised.
  KMSGW_DATA_DIR=$(cd -- "$DATA_DIR" && pwd -P)
  export KMSGW_DATA_DIR
  export SOFTHSM2_CONF="$KMSGW_DATA_DIR/softhsm2.conf"
  export KMSGW_CONFIG="$ROOT/config/default.json"
  # The embedded default's only principal: the README's demo key pair. The
  # gateway refuses a credentials file others can read; git checks files out
  # 0644, so it gets a private copy.
  if [[ ! -f "$KMSGW_DATA_DIR/credentials.json" ]]; then
    install -m 600 "$ROOT/config/demo-credentials.json" "$KMSGW_DATA_DIR/credentials.json"
  fi
else
  KMSGW_CONFIG=$(abspath "$KMSGW_CONFIG")
  export KMSGW_CONFIG
fi

cd "$ROOT"
[[ -f dist/src/main.js ]] || { echo "run.sh: dist/src/main.js not found; run 'make build'" >&2; exit 1; }
[[ -f "$KMSGW_CONFIG" ]] || echo "run.sh: warning: config $KMSGW_CONFIG does not exist" >&2

exec node dist/src/main.js
