#!/usr/bin/env node
// The Dockerfile's HEALTHCHECK (the tests run it too): GET /healthz, exit 0
// on a 200 within the timeout, else 1 with one line on stderr saying why.
// The image has no curl; node is there anyway.
//
//   KMSGW_HEALTHCHECK_URL  default https://127.0.0.1:8443/healthz (the compose config)
//   KMSGW_HEALTHCHECK_CA   CA bundle for an https URL; default
//                          $KMSGW_DATA_DIR/tls/ca.crt when that file exists,
//                          else the system's trust store
//
// /healthz is liveness only (the process serves HTTP; it never touches the
// HSM), so a token outage does not get the container restarted: a restart
// would not bring the token back. Readiness is /readyz.
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';

const TIMEOUT_MS = 2500;
const url = new URL(process.env.KMSGW_HEALTHCHECK_URL || 'https://127.0.0.1:8443/healthz');
let caFile = process.env.KMSGW_HEALTHCHECK_CA || '';
if (caFile === '' && process.env.KMSGW_DATA_DIR) {
  const candidate = join(process.env.KMSGW_DATA_DIR, 'tls', 'ca.crt');
  if (existsSync(candidate)) caFile = candidate;
}

function fail(why) {
  process.stderr.write(`healthcheck: ${url.href}: ${why}\n`);
  process.exit(1);
}

const client = url.protocol === 'https:' ? https : http;
const options = { method: 'GET', timeout: TIMEOUT_MS };
if (url.protocol === 'https:' && caFile !== '') options.ca = readFileSync(caFile);
const req = client.request(url, options, (res) => {
  res.resume();
  res.on('end', () => {
    if (res.statusCode === 200) process.exit(0);
    fail(`HTTP ${res.statusCode}`);
  });
});
req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
req.on('error', (e) => fail(e.message));
req.end();
