#!/usr/bin/env bash
# Entrypoint of the gateway image (Dockerfile, docker-compose.yml). The tests
# run this same script outside Docker (test/integration/ops-config.test.ts).
#
# usage: scripts/docker-entrypoint.sh [--init-only]
#
# Environment (the Dockerfile sets the defaults marked *):
#   KMSGW_DATA_DIR              * /var/lib/kmsgw: the token volume (token store,
#                                 PINs, credentials, TLS material); required
#   KMSGW_CONFIG                * /etc/kmsgw/gateway.json (compose mounts
#                                 config/compose/gateway.json there); required
#   KMSGW_TOKEN_LABEL           * kmsgw-compose: the SoftHSM2 token label; must
#                                 match hsm.token.label of the config. Set but
#                                 empty: no SoftHSM2 token (an image for a real
#                                 HSM, whose config names the vendor's module)
#   KMSGW_INITIAL_CREDENTIALS   * <repo>/config/demo-credentials.json: copied
#                                 (mode 600) to $KMSGW_DATA_DIR/credentials.json
#                                 when that file does not exist yet
#   KMSGW_TLS_SELF_SIGNED_SANS  * DNS:gateway,DNS:localhost,IP:127.0.0.1: when set
#                                 and $KMSGW_DATA_DIR/tls/gateway.{crt,key} are
#                                 absent, make a throwaway CA and a server
#                                 certificate with these subjectAltNames. Empty:
#                                 never generate (bring your own certificate).
#   KMSGW_PUBLIC_DIR            * /var/lib/kmsgw-public: where the CA certificate
#                                 (public, mode 644) is published for Prometheus;
#                                 empty: not published
#   KMSGW_PORT, KMSGW_LOG_LEVEL   passed on to the gateway
#
# Steps, each idempotent (an existing volume is reused as it is):
#   1. the SoftHSM2 token: softhsm/init-token.sh, the script `make run` and the
#      tests use, initialises the token on an empty volume;
#   2. the credentials file, when missing;
#   3. the TLS material, when missing and KMSGW_TLS_SELF_SIGNED_SANS is set:
#      the CA's private key is deleted once it has signed the server
#      certificate, so nothing else can ever be issued under it;
#   4. unless --init-only: exec the gateway (node dist/src/main.js), so it is
#      PID 1 in the container and gets SIGTERM from `docker stop` directly.
#
# Never prints PINs or keys.
set -euo pipefail

prog=docker-entrypoint
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

die() { echo "$prog: $*" >&2; exit 1; }

init_only=0
case "${1:-}" in
  --init-only) init_only=1 ;;
  '') ;;
  *) die "usage: $0 [--init-only]" ;;
esac

[[ -n "${KMSGW_DATA_DIR:-}" ]] || die "KMSGW_DATA_DIR is not set"
[[ -n "${KMSGW_CONFIG:-}" ]] || die "KMSGW_CONFIG is not set"
[[ -f "$KMSGW_CONFIG" ]] || die "config $KMSGW_CONFIG does not exist (compose mounts config/compose/gateway.json there)"
label=${KMSGW_TOKEN_LABEL-kmsgw-compose}
initial_credentials=${KMSGW_INITIAL_CREDENTIALS:-$ROOT/config/demo-credentials.json}
sans=${KMSGW_TLS_SELF_SIGNED_SANS:-}
public_dir=${KMSGW_PUBLIC_DIR:-}

# Everything created below is private to the gateway's user unless chmod'ed.
umask 077

# 1. The SoftHSM2 token (init-token.sh creates the directory if needed, 0700).
if [[ -n "$label" ]]; then
  "$ROOT/softhsm/init-token.sh" "$KMSGW_DATA_DIR" "$label"
else
  mkdir -p -- "$KMSGW_DATA_DIR"
  echo "$prog: KMSGW_TOKEN_LABEL is empty: no SoftHSM2 token to initialise"
fi
data_dir=$(cd -- "$KMSGW_DATA_DIR" && pwd -P)
# A volume's mount point may come with a looser mode; the PINs live here.
chmod 0700 -- "$data_dir" 2>/dev/null || true
export KMSGW_DATA_DIR="$data_dir"
if [[ -n "$label" ]]; then export SOFTHSM2_CONF="$data_dir/softhsm2.conf"; fi

# 2. Credentials: the gateway refuses a file others can read, hence install -m 600.
if [[ ! -f "$data_dir/credentials.json" ]]; then
  [[ -f "$initial_credentials" ]] || die "no $data_dir/credentials.json and KMSGW_INITIAL_CREDENTIALS ($initial_credentials) does not exist"
  install -m 600 -- "$initial_credentials" "$data_dir/credentials.json"
  echo "$prog: installed credentials.json from $initial_credentials"
fi

# 3. TLS material.
tls_dir="$data_dir/tls"
if [[ -f "$tls_dir/gateway.crt" && -f "$tls_dir/gateway.key" ]]; then
  echo "$prog: TLS certificate present in $tls_dir; keeping it"
elif [[ -n "$sans" ]]; then
  command -v openssl >/dev/null 2>&1 || die "openssl not found (needed to make the self-signed TLS material)"
  mkdir -p -- "$tls_dir"
  work=$(mktemp -d "$tls_dir/.new.XXXXXX")
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  # Extensions as strict verifiers (Go's crypto/x509 in Prometheus) want them.
  cat >"$work/ext.cnf" <<EXT
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $sans
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
  openssl req -x509 "${ec[@]}" -keyout "$work/ca.key" -out "$work/ca.crt" -days 3650 \
    -subj "/CN=kms-hsm-gateway self-signed CA" \
    -addext 'basicConstraints = critical, CA:TRUE' -addext 'keyUsage = critical, keyCertSign, cRLSign' 2>/dev/null \
    || die "openssl could not make the CA"
  openssl req "${ec[@]}" -keyout "$work/gateway.key" -out "$work/gateway.csr" -subj "/CN=kms-hsm-gateway" 2>/dev/null \
    || die "openssl could not make the server key"
  openssl x509 -req -in "$work/gateway.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
    -set_serial "0x$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" -days 825 \
    -extfile "$work/ext.cnf" -extensions server -out "$work/gateway.crt" 2>/dev/null \
    || die "openssl could not sign the server certificate"
  rm -f -- "$work/ca.key" "$work/gateway.csr" "$work/ext.cnf"
  chmod 0600 -- "$work/gateway.key"
  chmod 0644 -- "$work/gateway.crt" "$work/ca.crt"
  # The key first, the certificate last: a run interrupted before the last
  # rename leaves no certificate, and the next run starts over.
  mv -f -- "$work/ca.crt" "$tls_dir/ca.crt"
  mv -f -- "$work/gateway.key" "$tls_dir/gateway.key"
  mv -f -- "$work/gateway.crt" "$tls_dir/gateway.crt"
  rmdir -- "$work"
  echo "$prog: made a self-signed CA and a server certificate for $sans in $tls_dir"
fi
if [[ -n "$public_dir" && -f "$tls_dir/ca.crt" ]]; then
  # Readable by others: Prometheus runs as another user.
  mkdir -p -m 0755 -- "$public_dir"
  if ! cmp -s -- "$tls_dir/ca.crt" "$public_dir/ca.crt"; then
    tmp=$(mktemp "$public_dir/.ca.crt.XXXXXX")
    cat -- "$tls_dir/ca.crt" >"$tmp"
    chmod 0644 -- "$tmp"
    mv -f -- "$tmp" "$public_dir/ca.crt"
    echo "$prog: published the CA certificate to $public_dir/ca.crt"
  fi
fi

if [[ $init_only -eq 1 ]]; then
  echo "$prog: initialised $data_dir (--init-only: not starting the gateway)"
  exit 0
fi

cd "$ROOT"
[[ -f dist/src/main.js ]] || die "dist/src/main.js not found (the image builds it; outside Docker run the TypeScript build)"
exec node dist/src/main.js
