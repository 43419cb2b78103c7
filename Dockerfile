# The gateway image for docker-compose.yml (a SoftHSM2 token in a volume).
# For a production HSM, add the vendor's PKCS#11 library and give a config
# naming it; SoftHSM2 is here for the development stack.
#
#   docker build -t kms-hsm-gateway:dev .
#
# Never built on the machines this repository is developed on (no Docker
# engine there): see README, "Operations". The entrypoint and the health
# check are scripts the tests run outside Docker.

# ---- build: npm ci (compiles the pkcs11js addon), tsc, prune dev deps ------
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# patches/: applied by the postinstall (patch-package), which rebuilds the
# pkcs11js addon from the patched source.
COPY patches ./patches
RUN npm ci --no-audit --no-fund --loglevel=error \
 && test -f node_modules/pkcs11js/build/Release/pkcs11.node \
 && grep -qF 'Answer what the token answers for a buffer that is too small' node_modules/pkcs11js/src/pkcs11.cpp
COPY tsconfig.json ./
COPY src ./src
# tsconfig.json also includes test/ and bench/; only src/ is copied, so only
# dist/src is built.
RUN node_modules/.bin/tsc -p tsconfig.json \
 && test -f dist/src/main.js \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error

# ---- runtime ---------------------------------------------------------------
FROM node:20-bookworm-slim
# softhsm2: the token (libsofthsm2.so, softhsm2-util for softhsm/init-token.sh);
# p11-kit-modules: p11-kit-client.so, to reach a token exported by
# `p11-kit server` (a network HSM set-up); openssl: the entrypoint's
# self-signed TLS material.
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 p11-kit-modules openssl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && test -f /usr/lib/softhsm/libsofthsm2.so
# A fixed non-root user; the volume mount points are created owned by it, so
# Docker initialises new named volumes with that owner.
RUN groupadd --system --gid 10001 kmsgw \
 && useradd --system --uid 10001 --gid kmsgw --home-dir /var/lib/kmsgw --no-create-home --shell /usr/sbin/nologin kmsgw \
 && install -d -o kmsgw -g kmsgw -m 0700 /var/lib/kmsgw \
 && install -d -o kmsgw -g kmsgw -m 0755 /var/lib/kmsgw-public \
 && install -d -o root -g root -m 0755 /etc/kmsgw
WORKDIR /app
# package.json: "type": "module" makes dist/*.js ES modules.
COPY package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY softhsm/init-token.sh ./softhsm/
COPY scripts/docker-entrypoint.sh scripts/healthcheck.mjs ./scripts/
COPY config ./config
ENV NODE_ENV=production \
    KMSGW_DATA_DIR=/var/lib/kmsgw \
    KMSGW_CONFIG=/etc/kmsgw/gateway.json \
    KMSGW_TOKEN_LABEL=kmsgw-compose \
    KMSGW_INITIAL_CREDENTIALS=/app/config/demo-credentials.json \
    KMSGW_TLS_SELF_SIGNED_SANS=DNS:gateway,DNS:localhost,IP:127.0.0.1 \
    KMSGW_PUBLIC_DIR=/var/lib/kmsgw-public \
    KMSGW_HEALTHCHECK_URL=https://127.0.0.1:8443/healthz
USER kmsgw
VOLUME ["/var/lib/kmsgw", "/var/lib/kmsgw-public"]
EXPOSE 8443
# Liveness only (/healthz never touches the HSM); readiness is /readyz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/scripts/healthcheck.mjs"]
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
