/**
 * Reference servers for `make bench`: what a bare node:http server does on
 * the same machine, under the same wrk load, with the same Encrypt 4 KB
 * request, so the gateway's figures can be read against the ceiling of
 * what it is built from. Neither checks SigV4, validates a schema, writes
 * an audit line or counts a metric; both answer every POST with an
 * Encrypt-shaped JSON answer (KMS's field names, a blob of the same size).
 *
 * - `software`: AES-256-GCM with node:crypto and a key in memory: the kind
 *   of work a software KMS emulator does (no HSM).
 * - `hsm-inline`: the same token calls made synchronously on the event loop
 *   (Pkcs11Hsm, one session, on a session copy of the key as
 *   config/default.json has it): what the token path costs without the
 *   hand-off to a lane thread. The gateway never does this: a frozen token
 *   would freeze the event loop, and no client would get its
 *   DependencyTimeoutException within the deadline. It says what the
 *   deadline costs.
 * - `hsm-layer`: the gateway's own HSM layer (openPkcs11Hsm: GuardedHsm and
 *   its worker-thread lanes, deadlines included) on the bench token's AES
 *   key: the ceiling of the gateway's token path with nothing else around it.
 *
 * usage: node dist/bench/reference-server.js MODE PORT WORKERS DATA_DIR
 * (node:cluster with WORKERS processes, as the gateway runs); prints `ready`
 * on stdout once every process listens. Stopped with SIGTERM.
 */
import cluster from 'node:cluster';
import { createCipheriv, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { loadConfig, readPin } from '../src/config/config.js';
import type { Hsm } from '../src/hsm/hsm.js';
import { openPkcs11Hsm } from '../src/hsm/pkcs11/open.js';
import { Pkcs11Hsm } from '../src/hsm/pkcs11/pkcs11-hsm.js';
import { BENCH_AES } from './bench-keys.js';

const ROOT = join(import.meta.dirname, '..', '..');
const [mode = '', port = '0', workers = '1', dataDir = ''] = process.argv.slice(2);
if (mode !== 'software' && mode !== 'hsm-inline' && mode !== 'hsm-layer') throw new Error(`unknown mode '${mode}'`);
const KEY_ARN = 'arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000';

type Seal = (plaintext: Buffer) => Promise<Buffer>;

async function sealer(): Promise<Seal> {
  const aad = randomBytes(21);
  if (mode === 'software') {
    const key = randomBytes(32);
    return async (plaintext) => {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', key, iv);
      c.setAAD(aad);
      return Buffer.concat([aad, iv, c.update(plaintext), c.final(), c.getAuthTag()]);
    };
  }
  const config = loadConfig({ path: join(ROOT, 'config', 'default.json'), dataDir });
  const log = { info() {}, warn: (o: object, m: string) => console.error(m, o), error: (o: object, m: string) => console.error(m, o) };
  const pin = readPin(config.hsm.pin, process.env);
  const hsm: Hsm =
    mode === 'hsm-inline'
      ? await Pkcs11Hsm.open({ module: config.hsm.module, token: config.hsm.token, pin, sessionPoolSize: 1, sessionKeyCopies: config.hsm.sessionKeyCopies, log })
      : await openPkcs11Hsm(config.hsm, pin, log);
  const r = await hsm.prepareKey({ ...BENCH_AES, createIfMissing: false });
  if (r.state !== 'ready') throw new Error('the bench AES key is missing: run token-limit.js setup first');
  return async (plaintext) => {
    const { iv, sealed } = await hsm.aesGcmSeal(BENCH_AES.name, plaintext, aad);
    return Buffer.concat([aad, iv, sealed]);
  };
}

async function serve(): Promise<void> {
  const seal = await sealer();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { Plaintext?: string };
      seal(Buffer.from(body.Plaintext ?? '', 'base64')).then(
        (blob) => {
          const out = JSON.stringify({ CiphertextBlob: blob.toString('base64'), KeyId: KEY_ARN, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' });
          res.writeHead(200, ['Content-Type', 'application/x-amz-json-1.1', 'Content-Length', String(Buffer.byteLength(out))]);
          res.end(out);
        },
        (e: unknown) => {
          res.writeHead(500);
          res.end(String(e));
        },
      );
    });
  });
  server.listen(Number(port), '127.0.0.1', () => process.send?.('listening'));
  process.on('SIGTERM', () => process.exit(0));
}

if (cluster.isPrimary) {
  let listening = 0;
  const n = Number(workers);
  for (let i = 0; i < n; i++)
    cluster.fork().on('message', (m: unknown) => {
      if (m === 'listening' && ++listening === n) process.stdout.write('ready\n');
    });
  cluster.on('exit', (_w, code) => {
    if (code !== 0) process.exit(1);
  });
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 500).unref();
  });
} else {
  void serve().catch((e: unknown) => {
    console.error(`reference server: ${(e as Error).message}`);
    process.exit(1);
  });
}
