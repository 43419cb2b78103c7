/**
 * The one typed, validated configuration object. Loaded once by main.ts and
 * passed to whoever needs it; nothing reads it from a global.
 *
 * A bad file stops start-up with a ConfigError that names the field
 * (`keys[1].pkcs11: give label and/or id`). Secrets never live in the file:
 * the PIN is named by source (environment variable or file).
 */
import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';

export const SYMMETRIC_KEY_SPECS = ['SYMMETRIC_DEFAULT'] as const;
export const RSA_KEY_SPECS = ['RSA_2048', 'RSA_3072', 'RSA_4096'] as const;
export const KEY_SPECS = [...SYMMETRIC_KEY_SPECS, ...RSA_KEY_SPECS] as const;
export type KeySpec = (typeof KEY_SPECS)[number];
export type RsaKeySpec = (typeof RSA_KEY_SPECS)[number];

const uuid = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a lower-case UUID (AWS key id form)');

/** AWS alias rules: `alias/` prefix, 1..256 chars, [a-zA-Z0-9/_-], not `alias/aws/`. */
export const ALIAS_NAME_PATTERN = /^alias\/[a-zA-Z0-9/_-]+$/;
const aliasName = z
  .string()
  .max(256)
  .regex(ALIAS_NAME_PATTERN, 'must start with alias/ and use only a-z A-Z 0-9 / _ -')
  .refine((a) => !a.startsWith('alias/aws/'), 'alias/aws/ is reserved for AWS managed keys');

const hex = z.string().regex(/^([0-9a-fA-F]{2})+$/, 'must be an even number of hex digits');

const keyEntry = z
  .object({
    keyId: uuid,
    aliases: z.array(aliasName).default([]),
    keySpec: z.enum(KEY_SPECS),
    keyUsage: z.literal('ENCRYPT_DECRYPT').default('ENCRYPT_DECRYPT'),
    enabled: z.boolean().default(true),
    description: z.string().max(8192).default(''),
    /** The PKCS#11 object(s) behind the key: CKA_LABEL and/or CKA_ID (hex). */
    pkcs11: z
      .object({ label: z.string().min(1).max(256).optional(), id: hex.optional() })
      .strict()
      .refine((o) => o.label !== undefined || o.id !== undefined, 'give label and/or id'),
    /** Generate the key on the token when no object matches (the embedded demo keys). */
    createIfMissing: z.boolean().default(false),
  })
  .strict();

/**
 * A key policy, modelled on KMS key policies. `resources` names the keys it
 * governs: key ids, alias names, or alias patterns with `*` (`alias/app-*`);
 * `*` alone is every key and the account-level actions (CreateKey, ListKeys,
 * ListAliases, GenerateRandom).
 */
const policyStatement = z
  .object({
    Sid: z.string().min(1).optional(),
    Effect: z.enum(['Allow', 'Deny']),
    Principal: z.union([z.literal('*'), z.array(z.string().min(1)).min(1)]),
    Action: z.array(z.string().regex(/^kms:[A-Za-z*]+$/, 'must look like kms:Encrypt or kms:GenerateDataKey*')).min(1),
    Condition: z
      .partialRecord(
        z.enum(['StringEquals', 'StringLike']),
        z.record(
          z.string().regex(/^kms:EncryptionContext:.+$/, 'only kms:EncryptionContext:<key> conditions are supported'),
          z.union([z.string(), z.array(z.string()).min(1)]),
        ),
      )
      .optional(),
  })
  .strict();

const policyEntry = z
  .object({
    resources: z.array(z.string().min(1)).min(1),
    statements: z.array(policyStatement).min(1),
  })
  .strict();

export type PolicyConfig = z.infer<typeof policyEntry>;
export type PolicyStatement = z.infer<typeof policyStatement>;

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

const configSchema = z
  .object({
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must look like an AWS region (us-east-1)')
      .default('us-east-1'),
    accountId: z.string().regex(/^\d{12}$/, 'must be 12 digits').default('111122223333'),
    listen: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        /** A request's headers and body must arrive within this; slow or stalled clients are cut off. */
        requestTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
        /** HTTPS. Without it the gateway listens only on a loopback address (development). */
        tls: z
          .object({
            certFile: z.string().min(1),
            keyFile: z.string().min(1),
            /** CA bundle that client certificates must chain to; with it, clients must present one. */
            clientCaFile: z.string().min(1).optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 8080, requestTimeoutMs: 30_000 }),
    /** Who may call: access keys and their principals live in a separate secrets file. */
    auth: z
      .object({
        /** JSON credentials file (see README); refused when readable by group or others. */
        credentialsFile: z.string().min(1),
      })
      .strict(),
    /** Key policies: which principals may do which actions on which keys. */
    policies: z.array(policyEntry).default([]),
    /** One JSON line per request; to `file`, or to stdout when absent. */
    audit: z.object({ file: z.string().min(1).optional() }).strict().default({}),
    hsm: z
      .object({
        module: z.string().min(1),
        token: z
          .object({ label: z.string().min(1).max(32).optional(), slot: z.number().int().min(0).optional() })
          .strict()
          .refine((t) => (t.label === undefined) !== (t.slot === undefined), 'give exactly one of label or slot'),
        pin: z
          .object({ env: z.string().min(1).optional(), file: z.string().min(1).optional() })
          .strict()
          .refine((p) => (p.env === undefined) !== (p.file === undefined), 'give exactly one of env or file'),
        /** Sessions used for crypto operations, beside the one long-lived login session (per gateway process). */
        sessionPoolSize: z.number().int().min(1).max(256).default(8),
        /**
         * Worker threads the sessions are spread over (per gateway process;
         * never more than sessionPoolSize). A hung token holds only the
         * threads whose sessions are stuck in it.
         */
        laneThreads: z.number().int().min(1).max(64).default(2),
        /**
         * Encrypt and decrypt with an in-token session copy of each key
         * (C_CopyObject, CKA_TOKEN false: it never leaves the token). SoftHSM2
         * re-reads a token key's file on every operation, so copies nearly
         * double its rate. Off by default: a key object deleted on the token
         * behind the gateway's back keeps working through the copies until
         * the gateway restarts.
         */
        sessionKeyCopies: z.boolean().default(false),
        /**
         * Every HSM call, including the wait for a free session, must finish
         * within this; past it the request answers DependencyTimeoutException
         * and the session is quarantined until the token returns the call.
         */
        deadlineMs: z.number().int().min(10).max(60_000).default(2000),
        /** After this many token faults or timeouts in a row, calls fail fast and a background probe tests the token. */
        circuitFailureThreshold: z.number().int().min(1).max(1000).default(5),
        /** How often the background probe tests a token that is down (and how long the circuit stays open at least). */
        probeIntervalMs: z.number().int().min(50).max(600_000).default(1000),
        /** /readyz re-probes the token at most this often. */
        readyCacheMs: z.number().int().min(0).max(600_000).default(1000),
      })
      .strict(),
    keys: z.array(keyEntry).default([]),
    /**
     * Key state lives on the token. Every refreshMs each gateway reads the
     * token's state mark and re-reads the records when it moved, so other
     * instances' changes show within it; every fullRefreshMs it re-reads
     * them anyway (changes made by anything but this gateway's code).
     */
    state: z
      .object({
        refreshMs: z.number().int().min(100).max(600_000).default(2000),
        fullRefreshMs: z.number().int().min(1000).max(3_600_000).default(60_000),
      })
      .strict()
      .default({ refreshMs: 2000, fullRefreshMs: 60_000 }),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.listen.tls === undefined && !LOOPBACK.test(c.listen.host))
      ctx.addIssue({
        code: 'custom',
        path: ['listen', 'tls'],
        message: `plain HTTP is only for a loopback address; listening on ${c.listen.host} needs tls`,
      });
    const ids = new Set<string>();
    const aliases = new Set<string>();
    c.keys.forEach((k, i) => {
      if (ids.has(k.keyId)) ctx.addIssue({ code: 'custom', path: ['keys', i, 'keyId'], message: 'duplicate key id' });
      ids.add(k.keyId);
      k.aliases.forEach((a, j) => {
        if (aliases.has(a))
          ctx.addIssue({ code: 'custom', path: ['keys', i, 'aliases', j], message: `alias ${a} is used twice` });
        aliases.add(a);
      });
    });
  });

export type Config = z.infer<typeof configSchema>;
export type KeyConfig = Config['keys'][number];

export class ConfigError extends Error {}

function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out === '' ? '(root)' : out;
}

/** `${KMSGW_DATA_DIR}` in any string value becomes the data directory. */
function expand(value: unknown, dataDir: string): unknown {
  if (typeof value === 'string') return value.split('${KMSGW_DATA_DIR}').join(dataDir);
  if (Array.isArray(value)) return value.map((v) => expand(v, dataDir));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v, dataDir)]));
  return value;
}

export interface ConfigSources {
  /** Path of the JSON config file. */
  path: string;
  /** Substituted for `${KMSGW_DATA_DIR}` in the file. */
  dataDir: string;
  /** KMSGW_PORT, when set, overrides listen.port. */
  port?: string | undefined;
}

export function parseConfig(raw: unknown, src: Pick<ConfigSources, 'dataDir' | 'port'>, name = 'config'): Config {
  const result = configSchema.safeParse(expand(raw, src.dataDir));
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${fieldPath(i.path)}: ${i.message}`);
    throw new ConfigError(`${name}: ${lines.join('; ')}`);
  }
  const config = result.data;
  if (src.port !== undefined && src.port !== '') {
    const port = Number(src.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new ConfigError(`KMSGW_PORT: must be an integer 0..65535, got '${src.port}'`);
    config.listen.port = port;
  }
  return config;
}

export function loadConfig(src: ConfigSources): Config {
  let text: string;
  try {
    text = readFileSync(src.path, 'utf8');
  } catch (e) {
    throw new ConfigError(`${src.path}: cannot read config file (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${src.path}: not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(raw, src, src.path);
}

/** The gateway's URL for a listen address and port: an IPv6 host in brackets, https where listen.tls is set. */
export function listenUrl(host: string, port: number, tls: boolean): string {
  return `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Reads the token PIN from its configured source. A PIN file readable by
 * other users is refused: a PIN is as secret as the keys it unlocks.
 */
export function readPin(pin: Config['hsm']['pin'], env: NodeJS.ProcessEnv): string {
  if (pin.env !== undefined) {
    const value = env[pin.env];
    if (value === undefined || value === '') throw new ConfigError(`hsm.pin.env: environment variable ${pin.env} is not set`);
    return value;
  }
  const file = pin.file as string;
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (e) {
    throw new ConfigError(`hsm.pin.file: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  if ((mode & 0o077) !== 0)
    throw new ConfigError(`hsm.pin.file: ${file} is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  const value = readFileSync(file, 'utf8').trim();
  if (value === '') throw new ConfigError(`hsm.pin.file: ${file} is empty`);
  return value;
}
