/**
 * Micro-benchmark of SigV4 verification alone (no HTTP, no HSM): calls
 * `authenticate()` back to back, for a few seconds, on one realistic signed
 * request: an Encrypt of a 4 KB plaintext (base64 in the JSON body) exactly
 * as @aws-sdk/client-kms builds and signs it (host, content-type,
 * x-amz-target, x-amz-date, x-amz-user-agent, user-agent,
 * amz-sdk-invocation-id, amz-sdk-request, content-length, authorization),
 * captured from a real KMSClient whose request handler never sends it.
 * Prints one human line and one JSON line (ops/s, us/op).
 *
 *   node dist/bench/sigv4-micro.js [--impl current|reference|both] [--size 4096]
 *        [--seconds 3] [--warmup 0.5]
 *
 * --impl current     src/auth/sigv4.ts (the gateway's verifier)
 * --impl reference   the verifier before issue 5 (re-signs with @smithy/signature-v4;
 *                    test/support/sigv4-reference.ts), for a figure in the same run
 * --impl both        reference then current
 *
 * Every call is checked to return the principal, so a verifier that refused
 * the request would stop the run rather than report a fast failure. Numbers
 * on a shared 2-core machine are noisy: compare runs made one after the
 * other, never single figures.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import type { Credential } from '../src/auth/credentials.js';
import { SigV4Authenticator } from '../src/auth/sigv4.js';
import type { Authenticator, SignedRequest } from '../src/auth/types.js';
import { ReferenceSigV4Authenticator } from '../test/support/sigv4-reference.js';

const { values: a } = parseArgs({
  options: {
    impl: { type: 'string', default: 'current' },
    size: { type: 'string', default: '4096' },
    seconds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '0.5' },
  },
});
const size = Number(a.size);
const seconds = Number(a.seconds);
const warmup = Number(a.warmup);

const REGION = 'us-east-1';
// AWS's documented example pair (the demo principal), not a real secret.
const ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

/** The request @aws-sdk/client-kms signs for an Encrypt of `size` random bytes, as node:http would hand it over. */
async function sdkEncryptRequest(): Promise<{ req: SignedRequest; signedAt: number }> {
  let captured: SignedRequest | undefined;
  const client = new KMSClient({
    region: REGION,
    endpoint: 'http://127.0.0.1:8080',
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET },
    maxAttempts: 1,
    requestHandler: {
      handle: async (request: { method: string; path: string; headers: Record<string, string>; body?: unknown }) => {
        const headers: Record<string, string> = {};
        // node:http lower-cases header names.
        for (const [name, value] of Object.entries(request.headers)) headers[name.toLowerCase()] = value;
        const raw = request.body;
        const body = raw instanceof Uint8Array ? Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength) : Buffer.from(String(raw ?? ''));
        captured = { method: request.method, path: request.path, query: '', headers, body };
        throw new Error('captured, not sent');
      },
    },
  });
  try {
    await client.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: randomBytes(size) }));
  } catch {
    // expected: the handler never sends
  }
  if (captured === undefined) throw new Error('the SDK did not produce a request');
  const date = String(captured.headers['x-amz-date']);
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date);
  if (m === null) throw new Error(`unexpected x-amz-date ${date}`);
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return { req: captured, signedAt: Date.UTC(y, mo - 1, d, h, mi, s) };
}

async function run(name: string, auth: Authenticator, req: SignedRequest): Promise<{ impl: string; opsPerSec: number; usPerOp: number; calls: number }> {
  const loop = async (ms: number): Promise<{ calls: number; ns: bigint }> => {
    const start = process.hrtime.bigint();
    const end = start + BigInt(Math.round(ms * 1e6));
    let calls = 0;
    let now = start;
    while (now < end) {
      // Check in batches of 64 so reading the clock costs nothing measurable.
      for (let i = 0; i < 64; i++) {
        const principal = await auth.authenticate(req);
        if (principal.accessKeyId !== ACCESS_KEY_ID) throw new Error(`${name}: wrong principal`);
      }
      calls += 64;
      now = process.hrtime.bigint();
    }
    return { calls, ns: now - start };
  };
  await loop(warmup * 1000);
  const { calls, ns } = await loop(seconds * 1000);
  const opsPerSec = Math.round((calls * 1e9) / Number(ns));
  return { impl: name, opsPerSec, usPerOp: Number(((Number(ns) / calls) / 1000).toFixed(2)), calls };
}

async function main(): Promise<void> {
  const { req, signedAt } = await sdkEncryptRequest();
  const credentials = new Map<string, Credential>([[ACCESS_KEY_ID, { principal: { name: 'bench', admin: false, accessKeyId: ACCESS_KEY_ID }, secret: SECRET }]]);
  const opts = { region: REGION, credentials: { lookup: (id: string) => credentials.get(id) }, now: () => signedAt };
  const impls: [string, Authenticator][] = [];
  if (a.impl === 'reference' || a.impl === 'both') impls.push(['reference', new ReferenceSigV4Authenticator(opts)]);
  if (a.impl === 'current' || a.impl === 'both') impls.push(['current', new SigV4Authenticator(opts)]);
  if (impls.length === 0) throw new Error(`--impl must be current, reference or both, not ${a.impl}`);
  console.log(`request: POST / ${req.body.length} B body, signed headers: ${/SignedHeaders=([^,]+)/.exec(String(req.headers['authorization']))?.[1]}`);
  for (const [name, auth] of impls) {
    const r = await run(name, auth, req);
    console.log(`sigv4 ${name}: ${r.opsPerSec} ops/s, ${r.usPerOp} us/op (${r.calls} calls in ${seconds} s)`);
    console.log(JSON.stringify({ bench: 'sigv4-micro', size, seconds, ...r }));
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
