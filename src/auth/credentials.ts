/**
 * The credentials file: who may call, by access key. A JSON file named by
 * `auth.credentialsFile`, kept apart from the main config because it holds
 * secrets:
 *
 *   { "principals": [ { "name": "app", "admin": false,
 *       "accessKeys": [ { "accessKeyId": "AKIA...", "secretAccessKey": "..." } ] } ] }
 *
 * A principal has one or two access keys: two active secrets let it rotate
 * without downtime (add the new key, move the clients, remove the old one).
 *
 * The file is refused when group or others may read it. It is re-read on
 * SIGHUP and when it changes (polled about once a second, which also sees
 * editors that replace the file rather than write it in place). A reload
 * swaps the whole map at once; one that fails (unreadable, bad JSON, fails
 * validation, wrong mode) keeps the credentials in force and logs a warning
 * that names the problem, never a secret. A request looks its key up once,
 * so a reload never affects a request in flight.
 */
import { readFileSync, statSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../config/config.js';
import type { Logger } from '../log.js';
import type { Principal } from './types.js';

const FIELD = 'auth.credentialsFile';

/** At most two access keys per principal: the one in use and the one replacing it. */
export const MAX_KEYS_PER_PRINCIPAL = 2;

const accessKey = z
  .object({
    // IAM's own rule for access key ids: 16..128 word characters.
    accessKeyId: z.string().regex(/^\w{16,128}$/, 'must be 16 to 128 letters, digits or underscores'),
    secretAccessKey: z
      .string()
      .min(16, 'must be at least 16 characters')
      .max(1024, 'must be at most 1024 characters')
      .regex(/^\S+$/, 'must not contain white space'),
  })
  .strict();

const principal = z
  .object({
    // IAM user-name characters; no `*`, which key policies use as a wildcard.
    name: z.string().regex(/^[\w+=,.@-]{1,64}$/, 'must be 1 to 64 of the characters a-z A-Z 0-9 _ + = , . @ -'),
    admin: z.boolean().default(false),
    accessKeys: z
      .array(accessKey)
      .min(1, 'give at least one access key')
      .max(MAX_KEYS_PER_PRINCIPAL, `at most ${MAX_KEYS_PER_PRINCIPAL} access keys per principal (the one in use and its replacement)`),
  })
  .strict();

const credentialsSchema = z
  .object({ principals: z.array(principal) })
  .strict()
  .superRefine((file, ctx) => {
    const names = new Set<string>();
    const keyIds = new Set<string>();
    file.principals.forEach((p, i) => {
      if (names.has(p.name)) ctx.addIssue({ code: 'custom', path: ['principals', i, 'name'], message: `principal ${p.name} is defined twice` });
      names.add(p.name);
      p.accessKeys.forEach((k, j) => {
        if (keyIds.has(k.accessKeyId))
          ctx.addIssue({ code: 'custom', path: ['principals', i, 'accessKeys', j, 'accessKeyId'], message: `access key id ${k.accessKeyId} is used twice` });
        keyIds.add(k.accessKeyId);
      });
    });
  });

export type CredentialsFile = z.infer<typeof credentialsSchema>;

/** What an access key id stands for. */
export interface Credential {
  principal: Principal;
  secret: string;
}

function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out === '' ? '(root)' : out;
}

/**
 * Validates the parsed file and builds the lookup map. Messages name fields
 * and access key ids, never secrets (zod's messages do not quote values).
 */
export function parseCredentials(raw: unknown, file: string): Map<string, Credential> {
  const result = credentialsSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${fieldPath(i.path)}: ${i.message}`);
    throw new ConfigError(`${FIELD}: ${file}: ${lines.join('; ')}`);
  }
  const map = new Map<string, Credential>();
  for (const p of result.data.principals)
    for (const k of p.accessKeys)
      map.set(k.accessKeyId, { principal: { name: p.name, admin: p.admin, accessKeyId: k.accessKeyId }, secret: k.secretAccessKey });
  return map;
}

/** Reads and validates the file; throws a ConfigError that names `auth.credentialsFile`. */
export function readCredentialsFile(file: string): Map<string, Credential> {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (e) {
    throw new ConfigError(`${FIELD}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  if ((mode & 0o077) !== 0)
    throw new ConfigError(`${FIELD}: ${file} is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`${FIELD}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    // V8's message may quote the text around the error, which may be a secret: keep only the position.
    const where = /at position \d+( \(line \d+ column \d+\))?/.exec((e as Error).message)?.[0];
    throw new ConfigError(`${FIELD}: ${file} is not valid JSON${where === undefined ? '' : ` (${where})`}`);
  }
  return parseCredentials(raw, file);
}

export interface CredentialStoreOptions {
  /** How often the file is polled for changes; about a second by default. */
  pollMs?: number;
}

export class CredentialStore {
  #credentials: ReadonlyMap<string, Credential>;
  #watching = false;
  readonly #onSighup = () => this.reload('SIGHUP');
  readonly #onChange = (curr: Stats, prev: Stats) => {
    if (curr.mtimeMs === prev.mtimeMs && curr.ino === prev.ino && curr.size === prev.size && curr.mode === prev.mode) return;
    this.reload('file change');
  };

  private constructor(
    readonly file: string,
    private readonly log: Logger,
    private readonly pollMs: number,
    credentials: ReadonlyMap<string, Credential>,
  ) {
    this.#credentials = credentials;
  }

  /** Loads the file now (throwing a ConfigError when it is unusable); call start() to follow changes. */
  static load(file: string, log: Logger, opts: CredentialStoreOptions = {}): CredentialStore {
    return new CredentialStore(file, log, opts.pollMs ?? 1000, readCredentialsFile(file));
  }

  /** The principal and secret behind an access key id, as of the last good load. */
  lookup(accessKeyId: string): Credential | undefined {
    return this.#credentials.get(accessKeyId);
  }

  get size(): number {
    return this.#credentials.size;
  }

  /** Re-reads the file; on failure keeps the credentials in force. Returns whether the new file is in force. */
  reload(reason: string): boolean {
    try {
      const next = readCredentialsFile(this.file);
      this.#credentials = next;
      const principals = new Set([...next.values()].map((c) => c.principal.name)).size;
      this.log.info({ reason, principals, accessKeys: next.size }, 'credentials reloaded');
      return true;
    } catch (e) {
      const problem = e instanceof ConfigError ? e.message : `${FIELD}: ${(e as Error).message}`;
      this.log.warn({ reason, problem }, 'credentials not reloaded; the previous credentials stay in force');
      return false;
    }
  }

  /** Follows the file: reloads on SIGHUP and when the file changes. */
  start(): void {
    if (this.#watching) return;
    this.#watching = true;
    process.on('SIGHUP', this.#onSighup);
    // Polling (not fs.watch): it survives editors and tools that replace the file.
    watchFile(this.file, { interval: this.pollMs, persistent: false }, this.#onChange);
  }

  close(): void {
    if (!this.#watching) return;
    this.#watching = false;
    process.off('SIGHUP', this.#onSighup);
    unwatchFile(this.file, this.#onChange);
  }
}
