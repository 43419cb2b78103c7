# kms-hsm-gateway
#
#   make deps       install softhsm2 (apt) and npm dependencies if missing
#   make test-deps  deps + the Debian packages the tests use, when missing (see test-deps)
#   make build      compile src/ and test/ to dist/ (tsc)
#   make run        build, then scripts/run.sh (gateway on 127.0.0.1:8080)
#   make test       build, then scripts/test.sh (mocha over dist/test)
#   make bench      build, then scripts/bench.sh (issue 5 benchmark; results/)
#   make bench-deps deps + wrk (Debian package), when missing
#   make clean      remove dist/ (keeps .data/)
#
# Environment/command-line overrides passed through to the scripts:
#   KMSGW_PORT, KMSGW_DATA_DIR, KMSGW_CONFIG    e.g. make run KMSGW_PORT=9090
#   MOCHA_ARGS                                  e.g. make test MOCHA_ARGS='--grep oaep'
#   BENCH_SECONDS, BENCH_QUICK, KMSGW_WORKERS   e.g. make bench BENCH_QUICK=1
# (make passes variables from the environment and the command line on to
# recipes by itself; they are deliberately not `export`ed here, because
# exporting an undefined variable would hand the scripts an empty one.)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

SOFTHSM_LIB  := /usr/lib/softhsm/libsofthsm2.so
NPM_STAMP    := node_modules/.kmsgw-installed
PKCS11_ADDON := node_modules/pkcs11js/build/Release/pkcs11.node
# A line of patches/pkcs11js+2.1.7.patch: the addon must be built from patched source.
PKCS11_SRC   := node_modules/pkcs11js/src/pkcs11.cpp
PKCS11_MARK  := Answer what the token answers for a buffer that is too small
TSC          := node_modules/.bin/tsc
MOCHA_ARGS   ?=

# apt-get as root, else through sudo if there is one.
ifeq ($(shell id -u),0)
SUDO :=
else
SUDO := $(shell command -v sudo 2>/dev/null)
endif

# When the goals include test/test-deps, fetch awscli in the same apt run as
# softhsm2 (one `apt-get update` on a fresh machine instead of two).
WANT_AWSCLI := $(if $(filter test test-deps,$(MAKECMDGOALS)),yes)

.PHONY: deps test-deps bench-deps system-deps npm-deps build run test bench clean

deps: system-deps npm-deps
	@:

# The Debian packages the tests need, each only when missing (checked by
# command or file), fetched in one apt run:
#   awscli           the AWS CLI tests, when no `aws` is on the PATH
#   openssl          the TLS tests' throwaway CA; the container entrypoint's certificates
#   prometheus       promtool (rule checks, rule unit tests) and the server the scrape test runs
#   docker-compose   `docker-compose config` validates docker-compose.yml (no Docker engine needed)
#   p11-kit          `p11-kit server`: the network-HSM tests export the token on a unix socket
#   p11-kit-modules  p11-kit-client.so, the gateway's PKCS#11 module in those tests
#   opensc           pkcs11-tool: deletes key objects behind the gateway's back
test-deps: deps
	@missing=""; \
	command -v aws >/dev/null 2>&1 || missing="$$missing awscli"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	command -v p11-kit >/dev/null 2>&1 || missing="$$missing p11-kit"; \
	ls /usr/lib/*/pkcs11/p11-kit-client.so >/dev/null 2>&1 || missing="$$missing p11-kit-modules"; \
	command -v pkcs11-tool >/dev/null 2>&1 || missing="$$missing opensc"; \
	if [ -n "$$missing" ]; then \
	  $(call apt_install,$${missing# }); \
	fi

# The load generator of `make bench`, when missing.
bench-deps: deps
	@if ! command -v wrk >/dev/null 2>&1; then \
	  $(call apt_install,wrk); \
	fi

# $(call apt_install,PACKAGES...)
define apt_install
	echo "make: installing Debian package(s): $(1)"; \
	if [ "$$(id -u)" != 0 ] && [ -z "$(SUDO)" ]; then \
	  echo "make: need root or sudo to install $(1)" >&2; exit 1; \
	fi; \
	$(SUDO) apt-get update -qq; \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null
endef

system-deps:
	@missing=""; \
	if [ ! -e "$(SOFTHSM_LIB)" ] || ! command -v softhsm2-util >/dev/null 2>&1; then \
	  missing="softhsm2"; \
	fi; \
	if [ -n "$$missing" ] && [ "$(WANT_AWSCLI)" = yes ] && ! command -v aws >/dev/null 2>&1; then \
	  missing="$$missing awscli"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  $(call apt_install,$$missing); \
	  [ -e "$(SOFTHSM_LIB)" ] || { echo "make: $(SOFTHSM_LIB) still missing after installing softhsm2" >&2; exit 1; }; \
	fi

npm-deps: $(NPM_STAMP)

# Reinstall when node_modules is missing or older than package-lock.json.
# An existing node_modules that npm itself recorded as installed from this lock
# (its hidden lockfile is not older than package-lock.json) and that has the
# native addon is adopted without a reinstall.
# pkcs11js's install script (node-gyp rebuild) builds the native addon; npm 11
# runs it because package.json has "allowScripts": {"pkcs11js": true}. Our
# postinstall then applies patches/ (patch-package) and rebuilds the addon
# from the patched source. If scripts did not run (e.g. ignore-scripts=true
# in an npmrc), do both explicitly: an addon built from unpatched source is
# refused.
$(NPM_STAMP): package-lock.json $(wildcard patches/*.patch)
	@if [ -f node_modules/.package-lock.json ] && [ -f "$(PKCS11_ADDON)" ] \
	    && ! [ package-lock.json -nt node_modules/.package-lock.json ] \
	    && grep -qF "$(PKCS11_MARK)" "$(PKCS11_SRC)" && ! [ "$(PKCS11_SRC)" -nt "$(PKCS11_ADDON)" ]; then \
	  touch "$@"; exit 0; \
	fi; \
	echo "make: npm ci"; \
	npm ci --no-audit --no-fund --loglevel=error; \
	if ! grep -qF "$(PKCS11_MARK)" "$(PKCS11_SRC)"; then \
	  echo "make: patches/ not applied by npm ci (scripts off?); running patch-package"; \
	  node_modules/.bin/patch-package; \
	fi; \
	if [ ! -f "$(PKCS11_ADDON)" ] || [ "$(PKCS11_SRC)" -nt "$(PKCS11_ADDON)" ]; then \
	  echo "make: pkcs11js native addon missing or older than its patched source; running npm rebuild pkcs11js"; \
	  npm rebuild pkcs11js --ignore-scripts=false --no-audit --no-fund --loglevel=error; \
	fi; \
	if [ ! -f "$(PKCS11_ADDON)" ]; then \
	  echo "make: $(PKCS11_ADDON) missing; building it needs python3, make and g++" >&2; \
	  exit 1; \
	fi; \
	touch "$@"

# tsc has no incremental state here, so every build is a full compile anyway;
# wiping dist/ first also drops output of deleted/renamed .ts files, which
# mocha would otherwise keep running.
build: deps
	@rm -rf dist
	$(TSC) -p tsconfig.json

run: deps build
	scripts/run.sh

test: test-deps build
	scripts/test.sh $(MOCHA_ARGS)

bench: bench-deps build
	scripts/bench.sh

clean:
	rm -rf dist
