/**
 * Test support: a real gateway process (`node dist/src/main.js`, as `make
 * run` starts it) on its own throwaway SoftHSM2 token, listening on a free
 * port, plus clients configured the way the README's quickstart is.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KMSClient } from '@aws-sdk/client-kms';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';

export const ROOT = resolve(import.meta.dirname, '..', '..', '..');
export const REGION = 'us-east-1';
export const ACCOUNT = '111122223333';
export const DEMO_ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE';
export const DEMO_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface TokenDir {
  dir: string;
  conf: string;
  pinFile: string;
  label: string;
}

/** A fresh SoftHSM2 token made by the same script `make run` uses. */
export function makeToken(label = 'kmsgw-it'): TokenDir {
  const base = process.env['KMSGW_TEST_TMP'] ?? tmpdir();
  const dir = join(mkdtempSync(join(base, 'gw-')), 'hsm');
  execFileSync(join(ROOT, 'softhsm', 'init-token.sh'), [dir, label], { stdio: 'ignore' });
  // The demo principal, installed as `make run` installs it (private copy).
  copyFileSync(join(ROOT, 'config', 'demo-credentials.json'), join(dir, 'credentials.json'));
  chmodSync(join(dir, 'credentials.json'), 0o600);
  return { dir, conf: join(dir, 'softhsm2.conf'), pinFile: join(dir, 'pin'), label };
}

export function keyArn(keyId: string): string {
  return `arn:aws:kms:${REGION}:${ACCOUNT}:key/${keyId}`;
}

export interface GatewayProcess {
  url: string;
  port: number;
  token: TokenDir;
  child: ChildProcess;
  /** Everything the process wrote to stderr so far (its JSON log). */
  logs(): string;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** The config object, written to a file and passed as KMSGW_CONFIG; `${KMSGW_DATA_DIR}` is the token dir. */
  config?: unknown;
  token?: TokenDir;
  env?: Record<string, string>;
  /**
   * KMSGW_WORKERS: 1 (one process, no cluster primary) unless a test asks
   * for more. The cluster's own behaviour (state changes seen by every
   * worker, aggregated metrics, signals) is tested in cluster.test.ts; one
   * process keeps the other stories' logs, signals and timing simple.
   */
  workers?: number;
}

/** The embedded default's config with the token dir of a test. */
export function defaultConfig(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(ROOT, 'config', 'default.json'), 'utf8')) as Record<string, unknown>;
}

/**
 * A key-table entry for a test config: by default an AES-256 key that the
 * gateway creates on the token at first start under `label`.
 */
export function tableKey(
  keyId: string,
  label: string,
  opts: { aliases?: string[]; enabled?: boolean; keySpec?: string; description?: string; createIfMissing?: boolean } = {},
): Record<string, unknown> {
  return {
    keyId,
    aliases: opts.aliases ?? [],
    keySpec: opts.keySpec ?? 'SYMMETRIC_DEFAULT',
    ...(opts.description === undefined ? {} : { description: opts.description }),
    enabled: opts.enabled ?? true,
    pkcs11: { label },
    createIfMissing: opts.createIfMissing ?? true,
  };
}

export async function startGateway(opts: StartOptions = {}): Promise<GatewayProcess> {
  const token = opts.token ?? makeToken('kmsgw-dev');
  const configPath = join(token.dir, '..', 'config.json');
  const config = (opts.config ?? defaultConfig()) as Record<string, unknown>;
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'main.js')], {
    cwd: ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      SOFTHSM2_CONF: token.conf,
      KMSGW_DATA_DIR: token.dir,
      KMSGW_CONFIG: configPath,
      KMSGW_PORT: '0',
      KMSGW_WORKERS: String(opts.workers ?? 1),
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<number>((resolvePort, reject) => {
    const onData = (d: Buffer) => {
      stderr += d.toString();
      const m = /"port":(\d+)[^\n]*kms-hsm-gateway listening/.exec(stderr);
      if (m) {
        child.stderr?.off('data', onData);
        child.stderr?.on('data', (more: Buffer) => (stderr += more.toString()));
        resolvePort(Number(m[1]));
      }
    };
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code} before listening:\n${stderr}`)));
  });
  child.removeAllListeners('exit');
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    token,
    child,
    logs: () => stderr,
    stop: () =>
      new Promise<void>((done) => {
        // A gateway ended by a signal (main.ts does that when a call is stuck in a hung token) has no exit code.
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
}

/** Runs the gateway expecting start-up to fail; resolves with its exit code and stderr. */
export function startExpectingFailure(opts: StartOptions): Promise<{ code: number | null; stderr: string }> {
  const token = opts.token ?? makeToken('kmsgw-dev');
  const configPath = join(token.dir, '..', 'config.json');
  writeFileSync(configPath, typeof opts.config === 'string' ? opts.config : JSON.stringify(opts.config));
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'main.js')], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', SOFTHSM2_CONF: token.conf, KMSGW_DATA_DIR: token.dir, KMSGW_CONFIG: configPath, KMSGW_PORT: '0', ...opts.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((done) => child.once('exit', (code) => done({ code, stderr })));
}

/** @aws-sdk/client-kms pointed at the gateway, with the README's demo credentials and no retries. */
export function kmsClient(url: string): KMSClient {
  return new KMSClient({
    endpoint: url,
    region: REGION,
    credentials: { accessKeyId: DEMO_ACCESS_KEY_ID, secretAccessKey: DEMO_SECRET },
    maxAttempts: 1,
  });
}

/** The AWS CLI's environment for the README's quickstart. */
export function awsCliEnv(): NodeJS.ProcessEnv {
  // Nothing from the caller's own AWS set-up (profile, session token, endpoint) may leak in.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
  return {
    ...inherited,
    AWS_ACCESS_KEY_ID: DEMO_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: DEMO_SECRET,
    AWS_DEFAULT_REGION: REGION,
    AWS_PAGER: '',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
}

export interface SignOptions {
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  region?: string;
  service?: string;
  /** When the request is signed (X-Amz-Date); now by default. */
  signingDate?: Date;
}

/**
 * Signs a request for the gateway with SigV4 as the SDKs do (the demo
 * credentials unless told otherwise); returns the headers to send, Host
 * left out (fetch sets it from the URL, with the same value).
 */
export async function signHeaders(
  url: string,
  req: { method: string; headers: Record<string, string>; body?: string | Uint8Array | undefined },
  opts: SignOptions = {},
): Promise<Record<string, string>> {
  const u = new URL(url);
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: opts.accessKeyId ?? DEMO_ACCESS_KEY_ID,
      secretAccessKey: opts.secretAccessKey ?? DEMO_SECRET,
      ...(opts.sessionToken === undefined ? {} : { sessionToken: opts.sessionToken }),
    },
    region: opts.region ?? REGION,
    service: opts.service ?? 'kms',
    sha256: Sha256,
  });
  const query: Record<string, string> = {};
  u.searchParams.forEach((v, k) => (query[k] = v));
  const signed = await signer.sign(
    {
      method: req.method,
      protocol: u.protocol,
      hostname: u.hostname,
      path: u.pathname,
      query,
      headers: { ...req.headers, host: u.host },
      body: req.body,
    },
    { signingDate: opts.signingDate ?? new Date() },
  );
  const out = { ...(signed.headers as Record<string, string>) };
  delete out['host'];
  return out;
}

/**
 * Sends a raw request (for framing tests that the SDK would never send),
 * signed with the demo credentials unless `signed: false` or an
 * `authorization` header of its own is given.
 */
export async function rawRequest(
  url: string,
  init: { method?: string; target?: string; body?: string; headers?: Record<string, string>; signed?: boolean; sign?: SignOptions },
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> | undefined; text: string }> {
  let headers: Record<string, string> = { 'content-type': 'application/x-amz-json-1.1', ...init.headers };
  if (init.target !== undefined) headers['x-amz-target'] = init.target;
  const method = init.method ?? 'POST';
  const body = method === 'GET' || method === 'HEAD' ? undefined : (init.body ?? '{}');
  if (init.signed !== false && headers['authorization'] === undefined) headers = await signHeaders(url, { method, headers, body }, init.sign);
  const res = await fetch(url, { method, headers, body });
  const text = await res.text();
  let parsed: Record<string, unknown> | undefined;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}
