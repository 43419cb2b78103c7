/**
 * The token's own limit, through the gateway's HSM layer and no HTTP: one
 * child process of bench/run.ts per measurement (run.ts starts P of them at
 * once for the P-process limit). SOFTHSM2_CONF must point at the bench token.
 *
 *   node dist/bench/token-limit.js MODE DATA_DIR SECONDS START_AT_EPOCH_MS
 *
 * MODE:
 *   setup        creates the bench keys (AES-256, RSA-2048) on the token if missing
 *   aes          Pkcs11Hsm, one session, AES-256-GCM encrypts of 4 KB back to back
 *                on the token key object (the token's own limit)
 *   aes-copy     the same on an in-token session copy of the key
 *                (hsm.sessionKeyCopies, which config/default.json turns on)
 *   aes-copy-state  aes-copy in a process that first loads the gateway's key
 *                state from the token (KeyStore.init: every record listed and
 *                read, every key's objects found), as each gateway process
 *                holds it: the token's own rate with that many objects known
 *   aes-guarded  openPkcs11Hsm (GuardedHsm over worker-thread lanes, the
 *                gateway's own path), 32 encrypts of 4 KB in flight
 *   rsa-decrypt  Pkcs11Hsm, RSA-2048 OAEP-SHA-256 decrypts back to back
 * Warms up, waits until START_AT (so that parallel children measure the same window),
 * measures for SECONDS and prints one JSON line {mode, ops, seconds, rate,
 * inFlight, lateMs}. Run it as a program only: importing it runs it.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { loadConfig, readPin } from '../src/config/config.js';
import type { Hsm, PrepareKeyRequest } from '../src/hsm/hsm.js';
import { openPkcs11Hsm } from '../src/hsm/pkcs11/open.js';
import { Pkcs11Hsm } from '../src/hsm/pkcs11/pkcs11-hsm.js';
import { KeyStore } from '../src/keys/key-store.js';
import { BENCH_AES, BENCH_RSA } from './bench-keys.js';

const ROOT = join(import.meta.dirname, '..', '..');
const GUARDED_IN_FLIGHT = 32;
const WARM_UP_MS = 500;

const log = {
  info() {},
  warn: (obj: object, msg: string) => console.error('token-limit warn:', msg, JSON.stringify(obj)),
  error: (obj: object, msg: string) => console.error('token-limit error:', msg, JSON.stringify(obj)),
};

async function ready(hsm: Hsm, key: PrepareKeyRequest): Promise<void> {
  const r = await hsm.prepareKey({ ...key, createIfMissing: false });
  if (r.state !== 'ready') throw new Error(`${key.displayName} missing: run the setup mode first`);
}

/** Calls `op` back to back on `inFlight` chains until `ms` elapsed; returns the calls completed. */
async function loop(op: () => Promise<unknown>, ms: number, inFlight = 1): Promise<number> {
  const end = performance.now() + ms;
  let ops = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        await op();
        ops++;
      }
    }),
  );
  return ops;
}

async function main(): Promise<void> {
  const [mode = '', dataDir = '', seconds = '0', startAt = '0'] = process.argv.slice(2);
  const config = loadConfig({ path: join(ROOT, 'config', 'default.json'), dataDir });
  const pin = readPin(config.hsm.pin, process.env);
  const direct = (sessionKeyCopies = false) => Pkcs11Hsm.open({ module: config.hsm.module, token: config.hsm.token, pin, sessionPoolSize: 1, sessionKeyCopies, log });

  let hsm: Hsm;
  let op: () => Promise<unknown>;
  let inFlight = 1;
  // AAD of the gateway's blob-header size (21 B); a fresh random 12-byte IV per call, as the gateway uses.
  const plaintext = randomBytes(4096);
  const aad = randomBytes(21);
  const aes = () => hsm.aesGcmEncrypt(BENCH_AES.name, randomBytes(12), plaintext, aad);
  switch (mode) {
    case 'setup': {
      hsm = await direct();
      await hsm.prepareKey(BENCH_AES);
      await hsm.prepareKey(BENCH_RSA);
      await hsm.close();
      console.log(JSON.stringify({ mode }));
      return;
    }
    case 'aes':
    case 'aes-copy':
    case 'aes-copy-state':
      hsm = await direct(mode !== 'aes');
      // No config keys to seed: only the state already on the token is loaded.
      if (mode === 'aes-copy-state') await new KeyStore(config, hsm, { log, backgroundWork: false }).init({ keys: [] });
      await ready(hsm, BENCH_AES);
      op = aes;
      break;
    case 'aes-guarded':
      hsm = await openPkcs11Hsm(config.hsm, pin, log);
      await ready(hsm, BENCH_AES);
      op = aes;
      inFlight = GUARDED_IN_FLIGHT;
      break;
    case 'rsa-decrypt': {
      hsm = await direct();
      await ready(hsm, BENCH_RSA);
      const blob = await hsm.rsaOaepEncrypt(BENCH_RSA.name, 'sha256', randomBytes(32));
      op = () => hsm.rsaOaepDecrypt(BENCH_RSA.name, 'sha256', blob);
      break;
    }
    default:
      throw new Error(`unknown mode '${mode}'`);
  }
  await loop(op, WARM_UP_MS, inFlight);
  // START_AT 0: start right after the warm-up.
  const wait = Number(startAt) > 0 ? Number(startAt) - Date.now() : 0;
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const t0 = performance.now();
  const ops = await loop(op, Number(seconds) * 1000, inFlight);
  const elapsed = (performance.now() - t0) / 1000;
  await hsm.close();
  console.log(JSON.stringify({ mode, ops, seconds: elapsed, rate: ops / elapsed, inFlight, lateMs: Math.max(0, -wait) }));
}

main().then(
  // Worker-thread lanes are unref'd, but do not wait for anything else either.
  () => process.exit(0),
  (e: unknown) => {
    console.error('token-limit:', e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
