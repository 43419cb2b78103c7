/**
 * The KMS keys and aliases the gateway serves. All of their state lives on
 * the HSM as records (records.ts, state-store.ts); this class keeps an
 * in-memory index of it, so the request path never scans the token:
 * - resolution of the four KeyId forms with AWS's NotFoundException texts;
 * - state and usage checks;
 * - state changes (create, enable/disable, deletion, tags, aliases,
 *   rotation), each written to the token before the index changes;
 * - a periodic refresh (default every 2 s) that picks up other gateway
 *   instances' changes on the same token, destroys keys whose deletion
 *   window has passed and rotates keys whose rotation date has come.
 * Keys of the config file's key table are seeded onto the token on the first
 * start that sees them; from then on the token's record is the truth.
 */
import { randomUUID } from 'node:crypto';
import type { Config, KeyConfig, KeySpec } from '../config/config.js';
import {
  DisabledException,
  KeyUnavailableException,
  KMSInvalidStateException,
  NotFoundException,
} from '../errors.js';
import type { Hsm, PrepareKeyRequest } from '../hsm/hsm.js';
import type { AliasRecord, KeyRecord, KeyState, MaterialRecord, RotationType, Tag } from './records.js';
import { StateStore, type Snapshot, type StateChange, type Stored } from './state-store.js';

export type { KeyState } from './records.js';

export interface KmsKey {
  keyId: string;
  arn: string;
  keySpec: KeySpec;
  keyUsage: 'ENCRYPT_DECRYPT';
  description: string;
  aliases: string[];
  state: KeyState;
  creationDate: Date;
  deletionDate?: Date | undefined;
  pendingWindowInDays?: number | undefined;
  tags: Tag[];
  rotation: KeyRecord['rotation'];
  materials: MaterialRecord[];
  /** The HSM's name for the material new ciphertexts use. */
  currentMaterial: { version: number; name: string };
  /** false when the current material is not on the token. */
  materialPresent: boolean;
  source: KeyRecord['source'];
}

export interface AliasEntry {
  aliasName: string;
  aliasArn: string;
  targetKeyId: string;
  creationDate: Date;
  lastUpdatedDate: Date;
}

export interface KeyStoreLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error?(obj: object, msg: string): void;
}

/** Time, injectable so tests can make a day short. */
export interface Clock {
  now(): number;
  /** Length of a "day" for deletion windows and rotation periods, in ms. */
  dayMs: number;
}

export const realClock: Clock = { now: () => Date.now(), dayMs: 24 * 60 * 60 * 1000 };

export interface KeyStoreOptions {
  clock?: Clock;
  /**
   * How often to look for other instances' changes (ms): each round reads
   * the token's state mark, and re-reads the records only when it moved;
   * other instances' changes are seen within this.
   */
  refreshMs?: number;
  /** How often to re-read the records even when the mark did not move (ms; changes made without this gateway's code). */
  fullRefreshMs?: number;
  log?: KeyStoreLogger;
  /**
   * Called after every committed state change with the records it wrote or
   * removed, before the change's caller gets its answer; a cluster worker
   * hands them to every other worker (applyChanges), read-your-writes
   * across the workers.
   */
  onCommitted?: (changes: StateChange[]) => Promise<void>;
  /** Whether this store runs scheduled deletions and automatic rotations (default true; in a cluster only one worker does). */
  backgroundWork?: boolean;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const quiet: KeyStoreLogger = { info() {}, warn() {} };

export function materialName(keyId: string, version: number): string {
  return `${keyId}#${version}`;
}

/** The token label of material the gateway generates for a key. */
function generatedLabel(keyId: string, version: number): string {
  return `kmsgw-${keyId}-v${version}`;
}

export class KeyStore {
  private byId = new Map<string, KmsKey>();
  private aliasIndex = new Map<string, AliasEntry>();
  private snapshot: Snapshot = { keys: new Map(), aliases: new Map() };
  /** Material names prepared on the HSM, and whether the token had them. */
  private readonly prepared = new Map<string, boolean>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly state: StateStore;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private isLoaded = false;
  readonly region: string;
  readonly accountId: string;
  readonly clock: Clock;
  readonly refreshMs: number;
  readonly fullRefreshMs: number;
  /** The state mark read just before the last full refresh, and when that refresh ran. */
  private seenMark: string | undefined;
  private fullRefreshAt = 0;
  private log: KeyStoreLogger;
  private readonly onCommitted: (changes: StateChange[]) => Promise<void>;
  /** Changes committed and not yet handed to onCommitted. */
  private unpublished: StateChange[] = [];
  /**
   * Changes other workers handed over while a load was running: its listing
   * may have missed them, so they are applied once it is done (learn()
   * skips what the listing already had).
   */
  private handedOverEarly: StateChange[] = [];
  private backgroundWork: boolean;

  constructor(
    config: Pick<Config, 'region' | 'accountId'>,
    private readonly hsm: Hsm,
    opts: KeyStoreOptions = {},
  ) {
    this.region = config.region;
    this.accountId = config.accountId;
    this.clock = opts.clock ?? realClock;
    this.refreshMs = opts.refreshMs ?? 2000;
    this.fullRefreshMs = opts.fullRefreshMs ?? 60_000;
    this.log = opts.log ?? quiet;
    this.onCommitted = opts.onCommitted ?? (async () => undefined);
    this.backgroundWork = opts.backgroundWork ?? true;
    this.state = new StateStore(hsm, { warn: (o, m) => this.log.warn(o, m) }, (c) => this.unpublished.push(c));
  }

  // ---- start-up, refresh, background work ------------------------------

  /** Loads the token's state and seeds the config file's keys that are not on it yet. */
  async init(config: Pick<Config, 'keys'>, log?: KeyStoreLogger): Promise<void> {
    if (log !== undefined) this.log = log;
    // Changes handed over before this attempt's listing are in it.
    this.handedOverEarly = [];
    const mark = await this.state.mark();
    this.snapshot = await this.state.load();
    for (const k of config.keys) if (!this.snapshot.keys.has(k.keyId)) await this.seed(k);
    await this.rebuild();
    // A key whose deletion window passed while no gateway ran is never served.
    await this.destroyDueKeys();
    this.noteFullRefresh(mark);
    this.isLoaded = true;
    const early = this.handedOverEarly;
    this.handedOverEarly = [];
    // Loaded either way: if even the fallback re-read fails, the next refresh round sees the moved mark.
    if (early.length > 0)
      await this.applyChanges(early).catch((e: unknown) =>
        this.log.warn({ err: (e as Error).name, message: (e as Error).message }, 'could not re-read the state after the load; the next refresh round will'),
      );
  }

  private noteFullRefresh(mark: string): void {
    this.seenMark = mark;
    this.fullRefreshAt = performance.now();
  }

  /**
   * true once init() has completed: the index holds the token's state and
   * requests may be served. Until then (the token was unreachable at start
   * and the gateway retries the load in the background) the index is empty
   * or partial, so every KMS request is refused with assertLoaded().
   */
  get loaded(): boolean {
    return this.isLoaded;
  }

  /** Throws the retryable KeyUnavailableException every KMS request answers until the key state is loaded. */
  assertLoaded(): void {
    if (!this.isLoaded) throw new KeyUnavailableException('The key state is not loaded from the HSM yet.');
  }

  private async seed(k: KeyConfig): Promise<void> {
    const ref = { label: k.pkcs11.label, id: k.pkcs11.id };
    const result = await this.hsm.prepareKey({
      name: materialName(k.keyId, 0),
      displayName: this.keyArn(k.keyId),
      keySpec: k.keySpec,
      createIfMissing: k.createIfMissing,
      ref: { label: ref.label, id: ref.id === undefined ? undefined : Buffer.from(ref.id, 'hex') },
    });
    this.prepared.set(materialName(k.keyId, 0), result.state === 'ready');
    if (result.state === 'ready' && result.created)
      this.log.info({ key: this.keyArn(k.keyId), aliases: k.aliases }, 'created key on the token');
    const now = new Date(this.clock.now()).toISOString();
    const record: KeyRecord = {
      keyId: k.keyId,
      keySpec: k.keySpec,
      keyUsage: k.keyUsage,
      description: k.description,
      creationDate: now,
      keyState: k.enabled ? 'Enabled' : 'Disabled',
      tags: [],
      rotation: { enabled: false, periodDays: 365 },
      materials: [{ version: 0, ...ref, createdAt: now }],
      currentVersion: 0,
      source: 'config',
    };
    this.snapshot.keys.set(k.keyId, await this.state.write('key', k.keyId, record));
    for (const alias of k.aliases) {
      if (this.snapshot.aliases.has(alias)) continue;
      const a: AliasRecord = { aliasName: alias, targetKeyId: k.keyId, creationDate: now, lastUpdatedDate: now };
      this.snapshot.aliases.set(alias, await this.state.write('alias', alias, a));
    }
  }

  /** Starts the periodic refresh, deletion and rotation work. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.tick(), this.refreshMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.refreshing;
    await this.state.settled();
  }

  /** Resolves once the state mark announces every change committed so far (StateStore.touchMarkSoon). */
  settled(): Promise<void> {
    return this.state.settled();
  }

  /** One round of background work; never throws (an HSM fault is logged and retried next round). */
  async tick(): Promise<void> {
    if (this.refreshing !== undefined) return this.refreshing;
    this.refreshing = (async () => {
      try {
        await this.refreshIfChanged();
        if (this.backgroundWork) {
          await this.destroyDueKeys();
          await this.rotateDueKeys();
        }
      } catch (e) {
        this.log.warn({ err: (e as Error).name, message: (e as Error).message }, 'background state refresh failed');
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /** Makes this store the one that runs scheduled deletions and automatic rotations. */
  setBackgroundWork(on: boolean): void {
    this.backgroundWork = on;
  }

  /**
   * Applies the changes another worker of this gateway committed (its
   * onCommitted), in the order they arrive, without listing the token's
   * records: a full refresh lists and reads every record and finds the
   * state marks again, three passes over the token's objects that cost
   * SoftHSM2 ~65 ms each at 1,000 keys (it opens every object's file), and
   * each CreateKey made every other worker pay them before its client got
   * the answer. A new key's material is still found here, once. A change
   * that cannot be applied falls back to the full refresh. The state mark
   * moved, so the next refresh round lists the records anyway.
   */
  applyChanges(changes: readonly StateChange[]): Promise<void> {
    if (!this.isLoaded) {
      this.handedOverEarly.push(...changes);
      return Promise.resolve();
    }
    let applied = true;
    return this.exclusive('*', async () => {
      try {
        for (const c of changes) {
          if ('written' in c) await this.applyWritten(c.written);
          else await this.applyRemoved(c.removed.kind, c.removed.name, c.removed.generation);
        }
      } catch (e) {
        applied = false;
        this.log.warn({ err: (e as Error).name, message: (e as Error).message }, "could not apply another worker's state change; re-reading the state");
      }
    }).then(() => (applied ? undefined : this.refresh()));
  }

  private async applyWritten(stored: Stored<unknown>): Promise<void> {
    if (!this.state.learn(stored)) return;
    if (stored.label.kind === 'alias') {
      this.indexAlias(stored as Stored<AliasRecord>);
      return;
    }
    const record = (stored as Stored<KeyRecord>).value;
    await this.prepareMaterials([record]);
    this.indexKey(stored as Stored<KeyRecord>);
  }

  private async applyRemoved(kind: 'key' | 'alias', name: string, generation: number): Promise<void> {
    this.state.forget(kind, name, generation);
    if (kind === 'alias') {
      const current = this.snapshot.aliases.get(name);
      if (current !== undefined && current.label.generation <= generation) this.unindexAlias(name);
      return;
    }
    const current = this.snapshot.keys.get(name);
    if (current === undefined || current.label.generation > generation) return;
    this.snapshot.keys.delete(name);
    this.byId.delete(name);
    for (const m of current.value.materials) await this.forgetMaterial(materialName(name, m.version));
  }

  /** Re-reads the token's records (other instances' changes) and rebuilds the index. */
  async refresh(): Promise<void> {
    await this.exclusive('*', async () => {
      // Read before the listing: a change committed after it moves the mark again.
      const mark = await this.state.mark();
      const before = this.materialNames();
      this.snapshot = await this.state.load();
      await this.rebuild();
      await this.forgetGone(before);
      this.noteFullRefresh(mark);
    });
  }

  /**
   * A round's refresh: one read of the state mark, and the full refresh only
   * when it moved since the last one (or fullRefreshMs passed). Listing the
   * records every round cost ~65 ms of a lane thread per round with 1,000
   * keys on SoftHSM2 (a C_FindObjects pass over ~2,000 objects), stalling
   * the requests queued on that thread: Encrypt 4 KB fell to 0.79 of its
   * 5-key rate with a p99 of 120 ms (make bench).
   */
  private async refreshIfChanged(): Promise<void> {
    if (this.seenMark !== undefined && performance.now() - this.fullRefreshAt < this.fullRefreshMs) {
      if ((await this.state.mark()) === this.seenMark) return;
    }
    await this.refresh();
  }

  /** Builds the index from the snapshot, preparing material not prepared yet. */
  private async rebuild(): Promise<void> {
    const byId = new Map<string, KmsKey>();
    const aliases = new Map<string, AliasEntry>();
    for (const [name, s] of this.snapshot.aliases) {
      if (!this.snapshot.keys.has(s.value.targetKeyId)) continue;
      aliases.set(name, {
        aliasName: name,
        aliasArn: this.aliasArn(name),
        targetKeyId: s.value.targetKeyId,
        creationDate: new Date(s.value.creationDate),
        lastUpdatedDate: new Date(s.value.lastUpdatedDate),
      });
    }
    await this.prepareMaterials([...this.snapshot.keys.values()].map((s) => s.value));
    for (const [keyId, s] of this.snapshot.keys) byId.set(keyId, this.toKey(s.value, []));
    for (const a of aliases.values()) byId.get(a.targetKeyId)?.aliases.push(a.aliasName);
    for (const k of byId.values()) k.aliases.sort();
    this.byId = byId;
    this.aliasIndex = aliases;
  }

  /** The material names of every key in the snapshot. */
  private materialNames(): Set<string> {
    const names = new Set<string>();
    for (const s of this.snapshot.keys.values()) for (const m of s.value.materials) names.add(materialName(s.value.keyId, m.version));
    return names;
  }

  /**
   * Material of keys that were in the previous snapshot and are gone from
   * the token's records now (another worker or gateway destroyed the key):
   * the HSM drops its cached handles and session copies of it, so nothing
   * in this process uses it any more.
   */
  private async forgetGone(before: Set<string>): Promise<void> {
    const now = this.materialNames();
    for (const name of before) if (!now.has(name)) await this.forgetMaterial(name);
  }

  /** Material no key uses any more: the HSM drops its cached handles and session copies. */
  private async forgetMaterial(name: string): Promise<void> {
    this.prepared.delete(name);
    await this.hsm.forgetKey(name);
  }

  private materialRequest(r: KeyRecord, m: MaterialRecord): PrepareKeyRequest {
    return {
      name: materialName(r.keyId, m.version),
      displayName: this.keyArn(r.keyId),
      keySpec: r.keySpec,
      createIfMissing: false,
      ref: { label: m.label, id: m.id === undefined ? undefined : Buffer.from(m.id, 'hex') },
    };
  }

  /**
   * Finds the token objects of every material not found yet, in one pass
   * (and again on later refreshes while they are missing). A missing or
   * unusable material is logged once, when first seen so.
   */
  private async prepareMaterials(records: KeyRecord[]): Promise<void> {
    const todo = records.flatMap((r) =>
      r.materials.filter((m) => this.prepared.get(materialName(r.keyId, m.version)) !== true).map((m) => this.materialRequest(r, m)),
    );
    if (todo.length === 0) return;
    const results = await this.hsm.findKeys(todo);
    todo.forEach((req, i) => {
      const result = results[i];
      const seenBefore = this.prepared.has(req.name);
      this.prepared.set(req.name, result?.state === 'ready');
      if (seenBefore || result?.state === 'ready') return;
      if (result?.state === 'failed')
        this.log.warn({ key: req.displayName, material: req.name, reason: result.reason }, 'key material on the token is unusable: the key answers KeyUnavailableException');
      else this.log.warn({ key: req.displayName, material: req.name }, 'key material not found on the token: the key answers KeyUnavailableException');
    });
  }

  /** Finds a material version's token objects once (and again while they are missing). */
  private async prepareMaterial(r: KeyRecord, m: MaterialRecord): Promise<void> {
    const name = materialName(r.keyId, m.version);
    if (this.prepared.get(name) === true) return;
    try {
      const result = await this.hsm.prepareKey(this.materialRequest(r, m));
      this.prepared.set(name, result.state === 'ready');
      if (result.state === 'missing')
        this.log.warn({ key: this.keyArn(r.keyId), version: m.version }, 'key material not found on the token: the key answers KeyUnavailableException');
    } catch (e) {
      this.prepared.set(name, false);
      this.log.warn({ key: this.keyArn(r.keyId), err: (e as Error).message }, 'key material could not be prepared');
    }
  }

  private toKey(r: KeyRecord, aliases: string[]): KmsKey {
    const current = materialName(r.keyId, r.currentVersion);
    return {
      keyId: r.keyId,
      arn: this.keyArn(r.keyId),
      keySpec: r.keySpec,
      keyUsage: r.keyUsage,
      description: r.description,
      aliases,
      state: r.keyState,
      creationDate: new Date(r.creationDate),
      deletionDate: r.deletionDate === undefined ? undefined : new Date(r.deletionDate),
      pendingWindowInDays: r.pendingWindowInDays,
      tags: r.tags,
      rotation: r.rotation,
      materials: r.materials,
      currentMaterial: { version: r.currentVersion, name: current },
      materialPresent: this.prepared.get(current) === true,
      source: r.source,
    };
  }

  // ---- lookups (the request path: memory only) --------------------------

  keyArn(keyId: string): string {
    return `arn:aws:kms:${this.region}:${this.accountId}:key/${keyId}`;
  }

  aliasArn(alias: string): string {
    return `arn:aws:kms:${this.region}:${this.accountId}:${alias}`;
  }

  get size(): number {
    return this.byId.size;
  }

  /** Every key, oldest first (ties by key id): a stable order for ListKeys markers. */
  list(): KmsKey[] {
    return [...this.byId.values()].sort((a, b) => a.creationDate.getTime() - b.creationDate.getTime() || a.keyId.localeCompare(b.keyId));
  }

  /** Every alias, by name. */
  listAliases(): AliasEntry[] {
    return [...this.aliasIndex.values()].sort((a, b) => a.aliasName.localeCompare(b.aliasName));
  }

  findAlias(name: string): AliasEntry | undefined {
    return this.aliasIndex.get(name);
  }

  /**
   * Any of the four KeyId forms to a key, with AWS's NotFoundException texts.
   * The caller has validated the string's length.
   */
  resolve(keyId: string): KmsKey {
    if (keyId.startsWith('arn:')) return this.resolveArn(keyId);
    if (keyId.startsWith('alias/')) return this.resolveAlias(keyId);
    if (UUID.test(keyId)) return this.resolveId(keyId);
    throw new NotFoundException(`Invalid keyId '${keyId}'`);
  }

  /** A key named by id alone, as a ciphertext blob names it. */
  findById(keyId: string): KmsKey | undefined {
    return this.byId.get(keyId);
  }

  /** The HSM name of a material version of the key, if the key has it. */
  materialOf(key: KmsKey, version: number): string | undefined {
    return key.materials.some((m) => m.version === version) ? materialName(key.keyId, version) : undefined;
  }

  private resolveId(keyId: string): KmsKey {
    const key = this.byId.get(keyId);
    if (key === undefined) throw new NotFoundException(`Key '${this.keyArn(keyId)}' does not exist`);
    return key;
  }

  private resolveAlias(alias: string): KmsKey {
    const a = this.aliasIndex.get(alias);
    const key = a === undefined ? undefined : this.byId.get(a.targetKeyId);
    if (key === undefined) throw new NotFoundException(`Alias ${this.aliasArn(alias)} is not found.`);
    return key;
  }

  private resolveArn(arn: string): KmsKey {
    // arn:<partition>:kms:<region>:<account>:<resource>
    const parts = arn.split(':');
    if (parts.length !== 6 || parts[1] === '' || parts[2] !== 'kms') throw new NotFoundException(`Invalid arn ${arn}`);
    const [, , , region, account, resource] = parts as [string, string, string, string, string, string];
    if (region !== this.region) throw new NotFoundException(`Invalid arn ${region}`);
    if (resource.startsWith('key/')) {
      const id = resource.slice(4);
      if (account !== this.accountId || !UUID.test(id)) throw new NotFoundException(`Key '${arn}' does not exist`);
      return this.resolveId(id);
    }
    if (resource.startsWith('alias/')) {
      const a = account === this.accountId ? this.aliasIndex.get(resource) : undefined;
      const key = a === undefined ? undefined : this.byId.get(a.targetKeyId);
      if (key === undefined) throw new NotFoundException(`Alias ${arn} is not found.`);
      return key;
    }
    throw new NotFoundException(`Invalid arn ${arn}`);
  }

  /** State checks every cryptographic operation makes, in AWS's order. */
  assertUsable(key: KmsKey): void {
    if (key.state === 'Disabled') throw new DisabledException(`${key.arn} is disabled.`);
    if (key.state === 'PendingDeletion') throw new KMSInvalidStateException(`${key.arn} is pending deletion.`);
    if (!key.materialPresent) throw new KeyUnavailableException(`${key.arn} is unavailable.`);
  }

  // ---- state changes -----------------------------------------------------

  /** Runs fn alone among state changes of the same name ('*' = all of them, for refresh). */
  private exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prior = [this.locks.get(name), name === '*' ? undefined : this.locks.get('*')].filter((p) => p !== undefined);
    const run = Promise.allSettled(name === '*' ? [...this.locks.values()] : prior).then(fn);
    const tail = run.catch(() => undefined);
    this.locks.set(name, tail);
    void tail.then(() => {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    });
    return run;
  }

  /** Generates a new key on the token and commits its record. */
  async createKey(input: { keySpec: KeySpec; description: string; tags: Tag[] }): Promise<KmsKey> {
    const keyId = randomUUID();
    const label = generatedLabel(keyId, 0);
    const name = materialName(keyId, 0);
    // Material first, record last: a crash in between leaves an orphan object, never a key without material.
    await this.hsm.prepareKey({ name, displayName: this.keyArn(keyId), keySpec: input.keySpec, createIfMissing: true, newLabel: true, ref: { label } });
    this.prepared.set(name, true);
    const now = new Date(this.clock.now()).toISOString();
    const record: KeyRecord = {
      keyId,
      keySpec: input.keySpec,
      keyUsage: 'ENCRYPT_DECRYPT',
      description: input.description,
      creationDate: now,
      keyState: 'Enabled',
      tags: input.tags,
      rotation: { enabled: false, periodDays: 365 },
      materials: [{ version: 0, label, createdAt: now }],
      currentVersion: 0,
      source: 'api',
    };
    return this.published(this.exclusive(keyId, () => this.commitKey(record)));
  }

  /**
   * `change` committed: other workers see it before its caller gets the
   * result (outside every lock, so two workers publishing at once cannot
   * wait on each other). It hands on every change committed so far, its
   * own and those of changes still publishing: the other workers apply
   * them in the order they arrive, so each caller's changes are applied
   * before its answer. A change that fails is not published (as before):
   * what it committed goes with the next publish, or other workers see it
   * at their next refresh round (the state mark moved).
   */
  private async published<T>(change: Promise<T>): Promise<T> {
    const result = await change;
    // Sent even when empty: a change drained by a concurrent publish is
    // applied by the time this (later) message is.
    const changes = this.unpublished;
    this.unpublished = [];
    await this.onCommitted(changes);
    return result;
  }

  /**
   * Changes a key's record: `change` gets a copy of the current record (read
   * inside the per-key lock) and returns the new one.
   */
  updateKey(keyId: string, change: (r: KeyRecord) => KeyRecord | Promise<KeyRecord>): Promise<KmsKey> {
    return this.published(this.exclusive(keyId, async () => {
      const current = this.snapshot.keys.get(keyId);
      if (current === undefined) throw new NotFoundException(`Key '${this.keyArn(keyId)}' does not exist`);
      const next = await change(structuredClone(current.value));
      return this.commitKey(next);
    }));
  }

  private async commitKey(record: KeyRecord): Promise<KmsKey> {
    return this.indexKey(await this.state.write('key', record.keyId, record));
  }

  /** A key record written here or by another worker, into the snapshot and the index. */
  private indexKey(stored: Stored<KeyRecord>): KmsKey {
    const record = stored.value;
    this.snapshot.keys.set(record.keyId, stored);
    const aliases =
      this.byId.get(record.keyId)?.aliases ??
      [...this.aliasIndex.values()].filter((a) => a.targetKeyId === record.keyId).map((a) => a.aliasName).sort();
    const key = this.toKey(record, aliases);
    this.byId.set(record.keyId, key);
    return key;
  }

  /**
   * Adds a new material version on the token and makes it current. `guard`
   * sees the record inside the per-key lock, before any material is made,
   * and throws to refuse (state, key spec, quota checks without a race).
   * Only an automatic rotation moves the automatic schedule: AWS's on-demand
   * rotations "do not change existing automatic rotation schedules".
   */
  rotate(keyId: string, type: RotationType, guard?: (r: Readonly<KeyRecord>) => void): Promise<KmsKey> {
    return this.updateKey(keyId, async (r) => {
      guard?.(r);
      const version = r.materials.reduce((v, m) => Math.max(v, m.version), 0) + 1;
      const label = generatedLabel(keyId, version);
      const name = materialName(keyId, version);
      await this.hsm.prepareKey({ name, displayName: this.keyArn(keyId), keySpec: r.keySpec, createIfMissing: true, ref: { label } });
      this.prepared.set(name, true);
      const now = this.clock.now();
      r.materials.push({ version, label, createdAt: new Date(now).toISOString(), rotationType: type });
      r.currentVersion = version;
      if (r.rotation.enabled && type === 'AUTOMATIC')
        r.rotation.nextRotationDate = new Date(now + r.rotation.periodDays * this.clock.dayMs).toISOString();
      return r;
    });
  }

  createAlias(aliasName: string, targetKeyId: string, exists: () => Error): Promise<AliasEntry> {
    return this.published(this.exclusive(`alias:${aliasName}`, async () => {
      if (this.aliasIndex.has(aliasName)) throw exists();
      const now = new Date(this.clock.now()).toISOString();
      return this.commitAlias({ aliasName, targetKeyId, creationDate: now, lastUpdatedDate: now });
    }));
  }

  updateAlias(aliasName: string, targetKeyId: string, missing: () => Error): Promise<AliasEntry> {
    return this.published(this.exclusive(`alias:${aliasName}`, async () => {
      const current = this.snapshot.aliases.get(aliasName);
      if (current === undefined || !this.aliasIndex.has(aliasName)) throw missing();
      return this.commitAlias({ ...current.value, targetKeyId, lastUpdatedDate: new Date(this.clock.now()).toISOString() });
    }));
  }

  deleteAlias(aliasName: string, missing: () => Error): Promise<void> {
    return this.published(this.exclusive(`alias:${aliasName}`, async () => {
      if (!this.aliasIndex.has(aliasName)) throw missing();
      await this.state.remove('alias', aliasName);
      this.unindexAlias(aliasName);
    }));
  }

  private async commitAlias(a: AliasRecord): Promise<AliasEntry> {
    return this.indexAlias(await this.state.write('alias', a.aliasName, a));
  }

  /** An alias record written here or by another worker, into the snapshot and the index. */
  private indexAlias(stored: Stored<AliasRecord>): AliasEntry {
    const a = stored.value;
    this.snapshot.aliases.set(a.aliasName, stored);
    const prior = this.aliasIndex.get(a.aliasName);
    if (prior !== undefined) this.detachAlias(prior.targetKeyId, a.aliasName);
    const entry: AliasEntry = {
      aliasName: a.aliasName,
      aliasArn: this.aliasArn(a.aliasName),
      targetKeyId: a.targetKeyId,
      creationDate: new Date(a.creationDate),
      lastUpdatedDate: new Date(a.lastUpdatedDate),
    };
    this.aliasIndex.set(a.aliasName, entry);
    const key = this.byId.get(a.targetKeyId);
    if (key !== undefined) this.byId.set(key.keyId, { ...key, aliases: [...key.aliases, a.aliasName].sort() });
    return entry;
  }

  /** An alias removed here or by another worker, out of the snapshot and the index. */
  private unindexAlias(aliasName: string): void {
    this.snapshot.aliases.delete(aliasName);
    const entry = this.aliasIndex.get(aliasName);
    this.aliasIndex.delete(aliasName);
    if (entry !== undefined) this.detachAlias(entry.targetKeyId, aliasName);
  }

  private detachAlias(keyId: string, aliasName: string): void {
    const key = this.byId.get(keyId);
    if (key !== undefined) this.byId.set(keyId, { ...key, aliases: key.aliases.filter((a) => a !== aliasName) });
  }

  // ---- deletion and automatic rotation ----------------------------------

  /**
   * Destroys keys whose deletion date has passed: their token objects first,
   * then their aliases, then the key record (the commit point). A crash in
   * between leaves the record, and the next round finishes the job.
   */
  async destroyDueKeys(): Promise<string[]> {
    const now = this.clock.now();
    const isDue = (r: KeyRecord) => r.keyState === 'PendingDeletion' && r.deletionDate !== undefined && Date.parse(r.deletionDate) <= now;
    const due = [...this.snapshot.keys.values()].map((s) => s.value).filter(isDue);
    const destroyed: string[] = [];
    for (const scanned of due) {
      await this.published(this.exclusive(scanned.keyId, async () => {
        // Read again inside the lock: a CancelKeyDeletion that committed after the scan keeps the key.
        const r = this.snapshot.keys.get(scanned.keyId)?.value;
        if (r === undefined || !isDue(r)) return;
        for (const m of r.materials) {
          await this.prepareMaterial(r, m);
          await this.hsm.destroyKey(materialName(r.keyId, m.version));
          this.prepared.delete(materialName(r.keyId, m.version));
        }
        for (const [name, a] of [...this.snapshot.aliases])
          if (a.value.targetKeyId === r.keyId) {
            await this.state.remove('alias', name);
            this.unindexAlias(name);
          }
        await this.state.remove('key', r.keyId);
        this.snapshot.keys.delete(r.keyId);
        this.byId.delete(r.keyId);
        this.log.info({ key: this.keyArn(r.keyId) }, 'key deleted: its deletion window has passed');
        destroyed.push(r.keyId);
      }));
    }
    return destroyed;
  }

  /** Rotates enabled keys whose automatic rotation date has come. */
  async rotateDueKeys(): Promise<string[]> {
    const now = this.clock.now();
    const due = [...this.snapshot.keys.values()]
      .map((s) => s.value)
      .filter(
        (r) =>
          r.keyState === 'Enabled' &&
          r.rotation.enabled &&
          r.rotation.nextRotationDate !== undefined &&
          Date.parse(r.rotation.nextRotationDate) <= now,
      );
    for (const r of due) {
      await this.rotate(r.keyId, 'AUTOMATIC');
      this.log.info({ key: this.keyArn(r.keyId) }, 'key rotated automatically');
    }
    return due.map((r) => r.keyId);
  }
}
