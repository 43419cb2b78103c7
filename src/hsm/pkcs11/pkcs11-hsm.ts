/**
 * The Hsm on a PKCS#11 token through pkcs11js. The only module (with its
 * siblings in this folder) that imports pkcs11js.
 *
 * - C_Initialize with CKF_OS_LOCKING_OK: without it SoftHSM 2.6.1 corrupts
 *   its heap under concurrent async calls.
 * - One long-lived logged-in session keeps the token logged in (closing the
 *   last session logs the token out); crypto runs on a pool of sessions.
 * - Object handles are found once and cached: C_FindObjects is linear in the
 *   number of objects on the token. A stale handle is looked up again once.
 *   With `sessionKeyCopies`, operations use a session copy of the key
 *   (keyHandle), made on first use.
 * - Every call is synchronous: an instance (one lane of GuardedHsm) runs on
 *   a worker thread (pkcs11-worker.ts, shared by a few lanes), so a hung
 *   token blocks that thread and never the event loop. (pkcs11js has no async
 *   C_EncryptInit, C_FindObjects or C_GenerateRandom, and its async calls
 *   would park libuv pool threads that the rest of the process needs.)
 * - OAEP: probed at start with a throw-away session key pair. Where native
 *   CKM_RSA_PKCS_OAEP fails for a hash (SoftHSM 2.6.1 with SHA-256), the
 *   token does raw RSA (CKM_RSA_X_509) and the gateway does EME-OAEP with a
 *   constant-time decoder; the private key stays on the token either way.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { KeyUnavailableException, KmsError, KMSInternalException, InvalidCiphertextException } from '../../errors.js';
import type { RsaKeySpec } from '../../config/config.js';
import type { AesGcmSealed, FindKeyResult, Hsm, HsmDescription, HsmRecordRef, OaepHash, PrepareKeyRequest, PrepareKeyResult, RsaPublicKeyInfo } from '../hsm.js';
import { oaepDecode, oaepEncode } from '../oaep.js';
import { CKR, ckrCode, ckrName, disposition, isCopyRefused, isPinRefused, readDisposition } from './ckr.js';
import { AMBIGUOUS_FIND_TRIES, createWithRetry, findAtMostOne, FIND_TRIES, retryGeneralError, type CreateRetryHooks } from './transient-retry.js';
import { SessionPool } from './session-pool.js';

type Handle = Buffer;
type Template = pkcs11js.Template;
type OaepMode = HsmDescription['oaep'][OaepHash];

export interface HsmLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface Pkcs11HsmOptions {
  module: string;
  token: { label?: string | undefined; slot?: number | undefined };
  pin: string;
  sessionPoolSize: number;
  /**
   * Use an in-token session copy of each key (C_CopyObject with CKA_TOKEN
   * false, made on first use in this instance's login session) instead of
   * the token object. SoftHSM2 re-reads a token object's file on every
   * operation; its session copy nearly doubles the rate. The copy never
   * leaves the token, but it outlives a deletion of the token object behind
   * the gateway's back until forgetKey() or a recovery drops it.
   */
  sessionKeyCopies?: boolean | undefined;
  log: HsmLogger;
}

interface KeyEntry {
  req: PrepareKeyRequest;
  secret?: Handle;
  priv?: Handle;
  pub?: Handle;
  publicInfo?: RsaPublicKeyInfo;
  /** Session copies of the token objects (sessionKeyCopies), made on first use in the login session. */
  copies?: Partial<Record<ObjectKind, Handle>>;
  /** The token refused to copy this key (e.g. CKA_COPYABLE false): its token objects are used. */
  uncopyable?: boolean;
}

type ObjectKind = 'secret' | 'priv' | 'pub';

interface ScannedObject {
  handle: Handle;
  label: string;
  /** CKA_ID as hex ('' when the object has none). */
  id: string;
}

/** Blocks this thread for `ms` (a lane's worker thread; never the event loop of the main thread). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const RSA_BITS = { RSA_2048: 2048, RSA_3072: 3072, RSA_4096: 4096 } as const;
const HASH_MECH: Record<OaepHash, { hashAlg: number; mgf: number }> = {
  sha1: { hashAlg: pkcs11js.CKM_SHA_1, mgf: pkcs11js.CKG_MGF1_SHA1 },
  sha256: { hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256 },
};
/** pkcs11js does not export CKZ_DATA_SPECIFIED; its value is 1 (PKCS#11 2.40). */
const CKZ_DATA_SPECIFIED = 1;
const HASH_LEN: Record<OaepHash, number> = { sha1: 20, sha256: 32 };
/** GCM IV length: 96 bits, the size GCM is defined for without hashing the IV (NIST SP 800-38D). */
const GCM_IV_BYTES = 12;

function oaepMechanism(hash: OaepHash): pkcs11js.Mechanism {
  return {
    mechanism: pkcs11js.CKM_RSA_PKCS_OAEP,
    parameter: { type: pkcs11js.CK_PARAMS_RSA_OAEP, ...HASH_MECH[hash], source: CKZ_DATA_SPECIFIED } as pkcs11js.RsaOAEP,
  };
}

function ulong(buf: Buffer): number {
  // CK_ULONG as the platform writes it; every supported platform is little-endian.
  return buf.length >= 8 ? Number(buf.readBigUInt64LE(0)) : buf.readUInt32LE(0);
}

/**
 * SoftHSM2 2.6.1 runs OpenSSL on the calling thread and can leave an error
 * on that thread's OpenSSL error queue (e.g. "padding check failed" after a
 * failed RSA decryption); node:crypto's next key import on the thread then
 * reports that stale error as its own failure, and consumes it. So a failed
 * import is tried once more. (This is also why SoftHSM2 calls stay off the
 * main thread: see pkcs11-worker.ts.)
 */
function importKey<T>(fn: () => T): T {
  try {
    return fn();
  } catch {
    return fn();
  }
}

function leftPad(buf: Buffer, length: number): Buffer {
  if (buf.length === length) return buf;
  if (buf.length > length) throw new KMSInternalException();
  const out = Buffer.alloc(length);
  buf.copy(out, length - buf.length);
  return out;
}

export class Pkcs11Hsm implements Hsm {
  private readonly lib = new pkcs11js.PKCS11();
  private slot!: Handle;
  private tokenLabel = '';
  private loginSession!: Handle;
  private pool!: SessionPool<Handle>;
  private readonly keys = new Map<string, KeyEntry>();
  private readonly oaepMode: Record<OaepHash, OaepMode> = { sha1: 'native', sha256: 'native' };

  /** The module is loaded (dlopen) once per instance; C_Initialize may be repeated. */
  private loaded = false;
  /** The module is initialised, the token found and logged in. */
  private started = false;
  private probed = false;

  private constructor(private readonly opts: Pkcs11HsmOptions) {}

  /** Loads the module, finds the token, logs in and probes the mechanisms. */
  static async open(opts: Pkcs11HsmOptions): Promise<Pkcs11Hsm> {
    const hsm = new Pkcs11Hsm(opts);
    try {
      hsm.start();
      await hsm.probeOaep();
    } catch (e) {
      await hsm.close();
      throw e;
    }
    return hsm;
  }

  /** An instance that has not touched the module yet: `recover()` opens it (the lane of a worker thread). */
  static unopened(opts: Pkcs11HsmOptions): Pkcs11Hsm {
    return new Pkcs11Hsm(opts);
  }

  /**
   * Brings this instance back to a logged-in token, from any state, and
   * proves the token answers (one C_GenerateRandom). First the cheap way:
   * new sessions and a new login on the initialised module (enough after
   * sessions were closed or the login lost). If the module itself answers a
   * token-level fault, C_Finalize and C_Initialize again: p11-kit-client.so
   * (p11-kit 0.24.1) answers CKR_DEVICE_ERROR to every call, C_OpenSession
   * and C_GetSlotList included, after its server restarted, until the
   * module is re-initialised; SoftHSM2 reads its token directory only in
   * C_Initialize, so a token created later is seen only after one.
   * Rejects with KeyUnavailableException (tokenFault) while the token is
   * unreachable. The caller (GuardedHsm) runs one recovery at a time and
   * none while this instance has a call in flight.
   */
  async recover(): Promise<void> {
    if (this.started) {
      this.closeSessionsQuietly();
      try {
        this.openSessions();
        await this.proveToken();
        this.forgetHandles();
        await this.findMarks();
        return;
      } catch (e) {
        if (isPinRefused(e)) {
          this.closeSessionsQuietly();
          throw new KeyUnavailableException(`The HSM refused the PIN (${ckrName(ckrCode(e) ?? -1)}).`, { permanent: true });
        }
        this.opts.log.warn({ ckr: ckrName(ckrCode(e) ?? -1) }, 'token session re-open failed; re-initialising the PKCS#11 module');
        this.closeSessionsQuietly();
        try {
          this.lib.C_Finalize();
        } catch {
          // already finalised, or the module is gone
        }
        this.started = false;
      }
    }
    try {
      this.start();
      this.forgetHandles();
      if (!this.probed) await this.probeOaep();
      await this.proveToken();
      await this.findMarks();
    } catch (e) {
      const ckr = ckrCode(e);
      const reason = ckr === undefined ? (e as Error).message : ckrName(ckr);
      if (isPinRefused(e)) {
        this.closeSessionsQuietly();
        throw new KeyUnavailableException(`The HSM refused the PIN (${reason}).`, { permanent: true });
      }
      this.closeSessionsQuietly();
      if (this.started) {
        try {
          this.lib.C_Finalize();
        } catch {
          // ignore
        }
        this.started = false;
      }
      throw new KeyUnavailableException(`The HSM is unavailable (${reason}).`, { tokenFault: true });
    }
  }

  private async proveToken(): Promise<void> {
    await this.pool.use(
      (s) => this.lib.C_GenerateRandom(s, Buffer.alloc(1)),
      () => true,
    );
  }

  /**
   * Handles of a session or module that is gone mean nothing now; keys are
   * found again on first use. (Session copies lived in the login session
   * and are gone with it.)
   */
  private forgetHandles(): void {
    for (const entry of this.keys.values()) {
      delete entry.secret;
      delete entry.priv;
      delete entry.pub;
      delete entry.copies;
    }
    this.recordHandles.clear();
    this.markHandles = undefined;
  }

  /** Destroys this instance's session copies of a key (never its token objects). */
  private dropCopies(entry: KeyEntry | undefined): void {
    const copies = entry?.copies;
    if (copies === undefined) return;
    delete entry!.copies;
    for (const h of Object.values(copies)) {
      try {
        this.lib.C_DestroyObject(this.loginSession, h);
      } catch {
        // Gone with its session already.
      }
    }
  }

  private closeSessionsQuietly(): void {
    try {
      this.pool?.drain();
    } catch {
      // gone already
    }
    try {
      if (this.loginSession !== undefined) this.lib.C_CloseSession(this.loginSession);
    } catch {
      // gone already
    }
  }

  private start(): void {
    const { lib, opts } = this;
    if (!this.loaded) {
      lib.load(opts.module);
      this.loaded = true;
    }
    try {
      lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (e) {
      if (ckrCode(e) !== CKR.CRYPTOKI_ALREADY_INITIALIZED) throw e;
    }
    const slots = lib.C_GetSlotList(true);
    const found = slots.filter((s, i) => {
      if (opts.token.slot !== undefined) return ulong(s) === opts.token.slot || i === opts.token.slot;
      return lib.C_GetTokenInfo(s).label.trim() === opts.token.label;
    });
    const slot = found[0];
    if (slot === undefined) {
      // The module reads its slots in C_Initialize (SoftHSM2 its token directory, p11-kit-client.so
      // its server): finalise, so that the next attempt sees a token that appeared meanwhile.
      try {
        lib.C_Finalize();
      } catch {
        // ignore
      }
      throw new Error(
        opts.token.label !== undefined ? `no token labelled '${opts.token.label}'` : `no token in slot ${opts.token.slot}`,
      );
    }
    this.slot = slot;
    this.tokenLabel = lib.C_GetTokenInfo(slot).label.trim();
    this.openSessions();
    this.started = true;
    const mechs = new Set(lib.C_GetMechanismList(slot));
    for (const [name, m] of Object.entries({ CKM_AES_GCM: pkcs11js.CKM_AES_GCM, CKM_RSA_X_509: pkcs11js.CKM_RSA_X_509 }))
      if (!mechs.has(m)) opts.log.warn({ mechanism: name }, 'token does not list a mechanism the gateway uses');
  }

  /** The long-lived login session and a fresh (empty) pool. */
  private openSessions(): void {
    const { lib, opts, slot } = this;
    const flags = pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION;
    this.loginSession = lib.C_OpenSession(slot, flags);
    try {
      lib.C_Login(this.loginSession, pkcs11js.CKU_USER, opts.pin);
    } catch (e) {
      // A second login on the same token is benign (login is token-wide); anything else, e.g. CKR_PIN_INCORRECT, is not.
      if (ckrCode(e) !== CKR.USER_ALREADY_LOGGED_IN) throw e;
    }
    this.pool = new SessionPool<Handle>(
      { open: () => lib.C_OpenSession(slot, flags), close: (s) => lib.C_CloseSession(s) },
      opts.sessionPoolSize,
    );
  }

  /** Tries native OAEP per hash on a throw-away session key pair (never stored on the token). */
  private async probeOaep(): Promise<void> {
    const { lib } = this;
    const s = lib.C_OpenSession(this.slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      const pair = lib.C_GenerateKeyPair(
        s,
        { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
        [
          { type: pkcs11js.CKA_TOKEN, value: false },
          { type: pkcs11js.CKA_ENCRYPT, value: true },
          { type: pkcs11js.CKA_MODULUS_BITS, value: 1024 },
          { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
        ],
        [
          { type: pkcs11js.CKA_TOKEN, value: false },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_DECRYPT, value: true },
        ],
      );
      const probe = Buffer.from('kmsgw-oaep-probe');
      for (const hash of ['sha1', 'sha256'] as const) {
        let ok = false;
        // Each attempt on a fresh session: a failed Init can leave the operation active (SoftHSM 2.6.1).
        const t = lib.C_OpenSession(this.slot, pkcs11js.CKF_SERIAL_SESSION);
        try {
          lib.C_EncryptInit(t, oaepMechanism(hash), pair.publicKey);
          const ct = lib.C_Encrypt(t, probe, Buffer.alloc(128));
          lib.C_DecryptInit(t, oaepMechanism(hash), pair.privateKey);
          ok = lib.C_Decrypt(t, ct, Buffer.alloc(128)).equals(probe);
        } catch {
          ok = false;
        } finally {
          lib.C_CloseSession(t);
        }
        this.oaepMode[hash] = ok ? 'native' : 'raw-rsa+gateway-encoding';
      }
      lib.C_DestroyObject(s, pair.privateKey);
      lib.C_DestroyObject(s, pair.publicKey);
    } finally {
      lib.C_CloseSession(s);
    }
    this.probed = true;
    this.opts.log.info({ oaep: this.oaepMode }, 'token OAEP support probed');
  }

  describe(): HsmDescription {
    return {
      module: this.opts.module,
      tokenLabel: this.tokenLabel,
      oaep: { ...this.oaepMode },
      sessionPoolSize: this.opts.sessionPoolSize,
    };
  }

  /**
   * Waits (up to `graceMs`) for operations in flight to return from the token,
   * then closes the sessions and finalises. C_Finalize under a running async
   * call would pull the library from under a thread-pool worker; if calls are
   * still running after the grace period, the library is left initialised
   * and the process exit cleans up.
   */
  async close(graceMs = 10_000): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (this.pool !== undefined && this.pool.stats.inUse > 0) {
      if (Date.now() > deadline) {
        this.opts.log.warn({ inUse: this.pool.stats.inUse }, 'closing with token calls still running; not finalising');
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    try {
      this.pool?.drain();
      if (this.loginSession !== undefined) this.lib.C_CloseSession(this.loginSession);
    } catch {
      // closing anyway
    }
    try {
      this.lib.C_Finalize();
    } catch {
      // not initialised, or already finalised
    }
  }

  // ---- key material ---------------------------------------------------

  async prepareKey(req: PrepareKeyRequest): Promise<PrepareKeyResult> {
    const entry: KeyEntry = { req };
    this.dropCopies(this.keys.get(req.name));
    this.keys.set(req.name, entry);
    const kinds: ObjectKind[] = req.keySpec === 'SYMMETRIC_DEFAULT' ? ['secret'] : ['priv', 'pub'];
    if (req.createIfMissing && req.newLabel === true) {
      await this.generate(entry);
      return { state: 'ready', created: true };
    }
    const found = await this.pool.use(
      (s) => kinds.map((k) => this.find(s, entry, k)),
      () => true,
    );
    if (found.every((h) => h !== undefined)) {
      await this.checkMaterial(entry);
      return { state: 'ready', created: false };
    }
    if (found.some((h) => h !== undefined))
      throw new KMSInternalException(`${req.displayName}: only part of the RSA key pair is on the token`);
    if (!req.createIfMissing) return { state: 'missing' };
    await this.generate(entry);
    return { state: 'ready', created: true };
  }

  private template(entry: KeyEntry, kind: ObjectKind): Template {
    const { ref } = entry.req;
    const cls = { secret: pkcs11js.CKO_SECRET_KEY, priv: pkcs11js.CKO_PRIVATE_KEY, pub: pkcs11js.CKO_PUBLIC_KEY }[kind];
    const t: Template = [
      { type: pkcs11js.CKA_CLASS, value: cls },
      { type: pkcs11js.CKA_KEY_TYPE, value: kind === 'secret' ? pkcs11js.CKK_AES : pkcs11js.CKK_RSA },
      // Only token objects: a session copy of a key keeps its label.
      { type: pkcs11js.CKA_TOKEN, value: true },
    ];
    if (ref.label !== undefined) t.push({ type: pkcs11js.CKA_LABEL, value: ref.label });
    if (ref.id !== undefined) t.push({ type: pkcs11js.CKA_ID, value: ref.id });
    return t;
  }

  /**
   * Below this many requests, one find per key is cheaper than a pass over
   * every key object on the token.
   */
  private static readonly BULK_FIND_THRESHOLD = 8;

  async findKeys(reqs: PrepareKeyRequest[]): Promise<FindKeyResult[]> {
    const lookup = (req: PrepareKeyRequest): Promise<FindKeyResult> =>
      this.prepareKey({ ...req, createIfMissing: false }).catch((e: Error) => ({ state: 'failed', reason: e.message }));
    if (reqs.length < Pkcs11Hsm.BULK_FIND_THRESHOLD) {
      const out: FindKeyResult[] = [];
      for (const req of reqs) out.push(await lookup(req));
      return out;
    }
    const objects = await this.records((s) => this.scanKeyObjects(s));
    const out: FindKeyResult[] = [];
    for (const req of reqs) {
      const entry: KeyEntry = { req };
      this.dropCopies(this.keys.get(req.name));
      this.keys.set(req.name, entry);
      const kinds: ObjectKind[] = req.keySpec === 'SYMMETRIC_DEFAULT' ? ['secret'] : ['priv', 'pub'];
      const id = req.ref.id?.toString('hex');
      const hits = kinds.map((kind) =>
        (req.ref.label !== undefined ? (objects[kind].byLabel.get(req.ref.label) ?? []) : objects[kind].all).filter(
          (o) => id === undefined || o.id === id,
        ),
      );
      if (hits.some((h) => h.length > 1)) {
        // Looked up on its own: find() decides whether a second match is a second object or a lane's session copy in the making.
        out.push(await lookup(req));
        continue;
      }
      if (hits.every((h) => h.length === 0)) {
        out.push({ state: 'missing' });
        continue;
      }
      if (hits.some((h) => h.length === 0)) {
        out.push({ state: 'failed', reason: `${req.displayName}: only part of the RSA key pair is on the token` });
        continue;
      }
      kinds.forEach((kind, i) => (entry[kind] = hits[i]?.[0]?.handle));
      try {
        await this.checkMaterial(entry);
        out.push({ state: 'ready', created: false });
      } catch (e) {
        out.push({ state: 'failed', reason: (e as Error).message });
      }
    }
    return out;
  }

  /** Every token key object the gateway could use, with its label and id: three finds, two attribute reads each. */
  private async scanKeyObjects(s: Handle): Promise<Record<ObjectKind, { all: ScannedObject[]; byLabel: Map<string, ScannedObject[]> }>> {
    const { lib } = this;
    const out = {} as Record<ObjectKind, { all: ScannedObject[]; byLabel: Map<string, ScannedObject[]> }>;
    let reads = 0;
    for (const kind of ['secret', 'priv', 'pub'] as const) {
      const probe: KeyEntry = { req: { name: '', displayName: '', keySpec: kind === 'secret' ? 'SYMMETRIC_DEFAULT' : 'RSA_2048', createIfMissing: false, ref: {} } };
      const handles = this.findAll(s, this.template(probe, kind));
      const all: ScannedObject[] = [];
      const byLabel = new Map<string, ScannedObject[]>();
      for (const handle of handles) {
        let attrs: pkcs11js.Attribute[];
        try {
          attrs = lib.C_GetAttributeValue(s, handle, [{ type: pkcs11js.CKA_LABEL }, { type: pkcs11js.CKA_ID }]);
        } catch (e) {
          if (readDisposition(e) === 'handle') continue; // destroyed meanwhile
          throw e;
        }
        const label = (attrs[0]?.value as Buffer | undefined)?.toString('utf8') ?? '';
        const id = (attrs[1]?.value as Buffer | undefined)?.toString('hex') ?? '';
        const o: ScannedObject = { handle, label, id };
        all.push(o);
        const list = byLabel.get(label);
        if (list === undefined) byLabel.set(label, [o]);
        else list.push(o);
        if (++reads % 200 === 0) await new Promise((r) => setImmediate(r));
      }
      out[kind] = { all, byLabel };
    }
    return out;
  }

  private findAll(s: Handle, template: Template): Handle[] {
    const { lib } = this;
    this.findInit(s, template);
    const handles: Handle[] = [];
    try {
      for (;;) {
        const batch = lib.C_FindObjects(s, 500);
        handles.push(...batch);
        if (batch.length < 500) break;
      }
    } finally {
      lib.C_FindObjectsFinal(s);
    }
    return handles;
  }

  /** C_FindObjectsInit, tried again on SoftHSM2's transient CKR_GENERAL_ERROR (transient-retry.ts). */
  private findInit(s: Handle, template: Template): void {
    retryGeneralError(() => this.lib.C_FindObjectsInit(s, template), FIND_TRIES, { pause: sleepSync });
  }

  /**
   * One C_FindObjects; caches the handle. Throws when the reference is
   * ambiguous. With sessionKeyCopies a second match is looked for again
   * first: it may be another lane's copy in the making (transient-retry.ts).
   */
  private find(s: Handle, entry: KeyEntry, kind: ObjectKind): Handle | undefined {
    const { lib } = this;
    const template = this.template(entry, kind);
    const findOnce = (): Handle[] => {
      this.findInit(s, template);
      try {
        return lib.C_FindObjects(s, 2);
      } finally {
        lib.C_FindObjectsFinal(s);
      }
    };
    const hits = findAtMostOne(findOnce, AMBIGUOUS_FIND_TRIES, { pause: sleepSync }, () => this.opts.sessionKeyCopies === true);
    if (hits.length > 1)
      throw new KMSInternalException(`${entry.req.displayName}: more than one ${kind} key object matches its label/id`);
    const h = hits[0];
    if (h !== undefined) entry[kind] = h;
    return h;
  }

  /** The material must be what the key table says: AES-256, or RSA of the stated size. */
  private async checkMaterial(entry: KeyEntry): Promise<void> {
    const { req } = entry;
    if (req.keySpec === 'SYMMETRIC_DEFAULT') {
      const len = await this.pool.use(
        (s) => this.lib.C_GetAttributeValue(s, entry.secret as Handle, [{ type: pkcs11js.CKA_VALUE_LEN }]),
        () => true,
      );
      const bytes = ulong(len[0]?.value as Buffer);
      if (bytes !== 32)
        throw new KMSInternalException(`${req.displayName}: token key is AES-${bytes * 8}, SYMMETRIC_DEFAULT needs AES-256`);
      return;
    }
    const info = await this.rsaPublicKey(req.name);
    if (info.modulusBytes * 8 !== RSA_BITS[req.keySpec])
      throw new KMSInternalException(`${req.displayName}: token key has ${info.modulusBytes * 8} bits, key spec is ${req.keySpec}`);
  }

  /** createWithRetry's hooks on this instance: a warning per new try (the object's name and nothing else), a pause on the lane thread. */
  private createRetryHooks(what: string, leftBehind: () => boolean): CreateRetryHooks {
    return {
      leftBehind,
      pause: sleepSync,
      retrying: (attempt) => this.opts.log.warn({ object: what, attempt }, 'the token answered CKR_GENERAL_ERROR creating an object and left nothing behind; trying again'),
    };
  }

  private async generate(entry: KeyEntry): Promise<void> {
    const { req } = entry;
    const common: Template = [{ type: pkcs11js.CKA_TOKEN, value: true }];
    if (req.ref.label !== undefined) common.push({ type: pkcs11js.CKA_LABEL, value: req.ref.label });
    if (req.ref.id !== undefined) common.push({ type: pkcs11js.CKA_ID, value: req.ref.id });
    const secretAttrs: Template = [
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    ];
    const kinds: ObjectKind[] = req.keySpec === 'SYMMETRIC_DEFAULT' ? ['secret'] : ['priv', 'pub'];
    await this.pool.use(
      async (s) => createWithRetry(() => {
        if (req.keySpec === 'SYMMETRIC_DEFAULT') {
          entry.secret = this.lib.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
            ...common,
            ...secretAttrs,
            { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
            { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
            { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
            { type: pkcs11js.CKA_ENCRYPT, value: true },
            { type: pkcs11js.CKA_DECRYPT, value: true },
            { type: pkcs11js.CKA_WRAP, value: false },
            { type: pkcs11js.CKA_UNWRAP, value: false },
          ]);
          return;
        }
        const pair = this.lib.C_GenerateKeyPair(
          s,
          { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
          [
            ...common,
            { type: pkcs11js.CKA_ENCRYPT, value: true },
            { type: pkcs11js.CKA_VERIFY, value: false },
            { type: pkcs11js.CKA_WRAP, value: false },
            { type: pkcs11js.CKA_MODULUS_BITS, value: RSA_BITS[req.keySpec] },
            { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
          ],
          [
            ...common,
            ...secretAttrs,
            { type: pkcs11js.CKA_DECRYPT, value: true },
            { type: pkcs11js.CKA_SIGN, value: false },
            { type: pkcs11js.CKA_UNWRAP, value: false },
          ],
        );
        entry.priv = pair.privateKey;
        entry.pub = pair.publicKey;
      }, this.createRetryHooks(req.displayName, () => kinds.some((k) => this.findAll(s, this.template(entry, k)).length > 0))),
      () => true,
    );
    this.opts.log.info({ key: req.displayName, keySpec: req.keySpec }, 'generated key material on the token');
  }

  // ---- operations -----------------------------------------------------

  async random(length: number): Promise<Buffer> {
    return this.pool.use(
      (s) => this.lib.C_GenerateRandom(s, Buffer.alloc(length)),
      (e) => this.discards(e, false),
    ).catch((e) => {
      throw this.translate(e, disposition(e, false), 'the HSM random number generator');
    });
  }

  /**
   * One session, one borrow: C_GenerateRandom for the IV, then
   * C_EncryptInit/C_Encrypt; IV, ciphertext and tag land in one buffer.
   */
  aesGcmSeal(name: string, plaintext: Buffer, aad: Buffer): Promise<AesGcmSealed> {
    return this.run(name, 'secret', false, async (s, key) => {
      const out = Buffer.alloc(GCM_IV_BYTES + plaintext.length + 16);
      const iv = this.lib.C_GenerateRandom(s, out.subarray(0, GCM_IV_BYTES));
      this.lib.C_EncryptInit(s, this.gcm(iv, aad), key);
      const sealed = this.lib.C_Encrypt(s, plaintext, out.subarray(GCM_IV_BYTES));
      return { iv, sealed };
    });
  }

  /** As aesGcmSeal, with the plaintext drawn by the same C_GenerateRandom as the IV. */
  aesGcmSealRandom(name: string, length: number, aad: Buffer): Promise<AesGcmSealed & { plaintext: Buffer }> {
    return this.run(name, 'secret', false, async (s, key) => {
      const drawn = this.lib.C_GenerateRandom(s, Buffer.alloc(length + GCM_IV_BYTES));
      const plaintext = drawn.subarray(0, length);
      const iv = drawn.subarray(length);
      try {
        this.lib.C_EncryptInit(s, this.gcm(iv, aad), key);
        const sealed = this.lib.C_Encrypt(s, plaintext, Buffer.alloc(length + 16));
        return { plaintext, iv, sealed };
      } catch (e) {
        drawn.fill(0);
        throw e;
      }
    });
  }

  aesGcmEncrypt(name: string, iv: Buffer, plaintext: Buffer, aad: Buffer): Promise<Buffer> {
    return this.run(name, 'secret', false, async (s, key) => {
      this.lib.C_EncryptInit(s, this.gcm(iv, aad), key);
      return this.lib.C_Encrypt(s, plaintext, Buffer.alloc(plaintext.length + 16));
    });
  }

  aesGcmDecrypt(name: string, iv: Buffer, ciphertextAndTag: Buffer, aad: Buffer): Promise<Buffer> {
    if (ciphertextAndTag.length < 16) return Promise.reject(new InvalidCiphertextException());
    return this.run(name, 'secret', true, async (s, key) => {
      this.lib.C_DecryptInit(s, this.gcm(iv, aad), key);
      return this.lib.C_Decrypt(s, ciphertextAndTag, Buffer.alloc(ciphertextAndTag.length));
    });
  }

  async rsaOaepEncrypt(name: string, hash: OaepHash, plaintext: Buffer): Promise<Buffer> {
    const { modulusBytes: k } = await this.rsaPublicKey(name);
    if (this.oaepMode[hash] === 'native') {
      return this.run(name, 'pub', false, async (s, key) => {
        this.lib.C_EncryptInit(s, oaepMechanism(hash), key);
        return leftPad(this.lib.C_Encrypt(s, plaintext, Buffer.alloc(k)), k);
      });
    }
    const em = oaepEncode(plaintext, k, hash, await this.random(HASH_LEN[hash]));
    return this.run(name, 'pub', false, async (s, key) => {
      this.lib.C_EncryptInit(s, { mechanism: pkcs11js.CKM_RSA_X_509 }, key);
      return leftPad(this.lib.C_Encrypt(s, em, Buffer.alloc(k)), k);
    });
  }

  async rsaOaepDecrypt(name: string, hash: OaepHash, ciphertext: Buffer): Promise<Buffer> {
    const { modulusBytes: k } = await this.rsaPublicKey(name);
    if (ciphertext.length !== k) throw new InvalidCiphertextException();
    if (this.oaepMode[hash] === 'native') {
      return this.run(name, 'priv', true, async (s, key) => {
        this.lib.C_DecryptInit(s, oaepMechanism(hash), key);
        return this.lib.C_Decrypt(s, ciphertext, Buffer.alloc(k));
      });
    }
    const em = await this.run(name, 'priv', true, async (s, key) => {
      this.lib.C_DecryptInit(s, { mechanism: pkcs11js.CKM_RSA_X_509 }, key);
      return leftPad(this.lib.C_Decrypt(s, ciphertext, Buffer.alloc(k)), k);
    });
    try {
      const message = oaepDecode(em, k, hash);
      if (message === null) throw new InvalidCiphertextException();
      return message;
    } finally {
      em.fill(0);
    }
  }

  async rsaPublicKey(name: string): Promise<RsaPublicKeyInfo> {
    const entry = this.entry(name);
    if (entry.publicInfo !== undefined) return entry.publicInfo;
    const attrs = await this.run(name, 'pub', false, async (s, key) =>
      this.lib.C_GetAttributeValue(s, key, [{ type: pkcs11js.CKA_MODULUS }, { type: pkcs11js.CKA_PUBLIC_EXPONENT }]),
    );
    const n = attrs[0]?.value as Buffer;
    const e = attrs[1]?.value as Buffer;
    const keyObject = importKey(() =>
      createPublicKey({
      key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') },
      format: 'jwk',
    }),
    );
    const spki = keyObject.export({ type: 'spki', format: 'der' });
    const modulusBytes = (keyObject.asymmetricKeyDetails?.modulusLength ?? n.length * 8) / 8;
    entry.publicInfo = { spki, modulusBytes, keyObject };
    return entry.publicInfo;
  }

  async generateDataKeyPair(keySpec: RsaKeySpec): Promise<{ privateKeyPkcs8: Buffer; publicKeySpki: Buffer }> {
    const { lib } = this;
    const parts = [
      ['n', pkcs11js.CKA_MODULUS],
      ['e', pkcs11js.CKA_PUBLIC_EXPONENT],
      ['d', pkcs11js.CKA_PRIVATE_EXPONENT],
      ['p', pkcs11js.CKA_PRIME_1],
      ['q', pkcs11js.CKA_PRIME_2],
      ['dp', pkcs11js.CKA_EXPONENT_1],
      ['dq', pkcs11js.CKA_EXPONENT_2],
      ['qi', pkcs11js.CKA_COEFFICIENT],
    ] as const;
    const values = await this.pool
      .use(
        async (s) => {
          // Session objects: they vanish with the session even if we crash before destroying them.
          const pair = lib.C_GenerateKeyPair(
            s,
            { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
            [
              { type: pkcs11js.CKA_TOKEN, value: false },
              { type: pkcs11js.CKA_ENCRYPT, value: true },
              { type: pkcs11js.CKA_MODULUS_BITS, value: RSA_BITS[keySpec] },
              { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
            ],
            [
              { type: pkcs11js.CKA_TOKEN, value: false },
              { type: pkcs11js.CKA_PRIVATE, value: true },
              { type: pkcs11js.CKA_SENSITIVE, value: false },
              { type: pkcs11js.CKA_EXTRACTABLE, value: true },
              { type: pkcs11js.CKA_DECRYPT, value: true },
            ],
          );
          try {
            return lib.C_GetAttributeValue(s, pair.privateKey, parts.map(([, type]) => ({ type })));
          } finally {
            lib.C_DestroyObject(s, pair.privateKey);
            lib.C_DestroyObject(s, pair.publicKey);
          }
        },
        (e) => this.discards(e, false),
      )
      .catch((e) => {
        throw this.translate(e, disposition(e, false), 'the HSM key pair generator');
      });
    const jwk: Record<string, string> = { kty: 'RSA' };
    parts.forEach(([name], i) => {
      const v = values[i]?.value as Buffer;
      jwk[name] = v.toString('base64url');
      v.fill(0);
    });
    const privateKey = importKey(() => createPrivateKey({ key: jwk, format: 'jwk' }));
    return {
      privateKeyPkcs8: privateKey.export({ type: 'pkcs8', format: 'der' }),
      publicKeySpki: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }),
    };
  }

  /** Drops this instance's cached handles and session copies of a key; its token objects stay. */
  async forgetKey(name: string): Promise<void> {
    const entry = this.keys.get(name);
    if (entry === undefined) return;
    this.dropCopies(entry);
    delete entry.secret;
    delete entry.priv;
    delete entry.pub;
    delete entry.publicInfo;
  }

  async destroyKey(name: string): Promise<void> {
    const entry = this.keys.get(name);
    if (entry === undefined) return;
    this.dropCopies(entry);
    const kinds: ObjectKind[] = entry.req.keySpec === 'SYMMETRIC_DEFAULT' ? ['secret'] : ['priv', 'pub'];
    await this.pool
      .use(
        (s) => {
          for (const kind of kinds) {
            this.findInit(s, this.template(entry, kind));
            let hits: Handle[];
            try {
              hits = this.lib.C_FindObjects(s, 16);
            } finally {
              this.lib.C_FindObjectsFinal(s);
            }
            for (const h of hits) this.lib.C_DestroyObject(s, h);
          }
        },
        (e) => this.discards(e, false),
      )
      .catch((e) => {
        throw this.translate(e, disposition(e, false), entry.req.displayName);
      });
    this.keys.delete(name);
    this.opts.log.info({ key: entry.req.displayName }, 'destroyed key material on the token');
  }

  // ---- state records (CKO_DATA objects) -------------------------------

  private static readonly APPLICATION = 'kms-hsm-gateway';

  /** Runs a record operation; token faults become KeyUnavailableException naming the state store. */
  private records<T>(fn: (s: Handle) => T | Promise<T>): Promise<T> {
    return this.pool.use(fn, (e) => this.discards(e, false)).catch((e) => {
      throw this.translate(e, disposition(e, false), 'The key state on the HSM');
    });
  }

  /**
   * A record's `ref` is its label, never its object handle: handles are
   * per PKCS#11 instance (each lane has its own; behind p11-kit-client.so
   * each lane is a separate server process with its own numbering), and
   * a ref read on one lane is used on another. Labels are unique (they name
   * generation and writer, see keys/records.ts). Each instance caches
   * label -> handle from its own finds, and finds again on a miss or a
   * stale handle.
   */
  private readonly recordHandles = new Map<string, Handle>();

  private recordTemplate(label?: string): Template {
    const t: Template = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_APPLICATION, value: Pkcs11Hsm.APPLICATION },
    ];
    if (label !== undefined) t.push({ type: pkcs11js.CKA_LABEL, value: label });
    return t;
  }

  listRecords(): Promise<HsmRecordRef[]> {
    return this.records(async (s) => {
      const handles = this.findAll(s, this.recordTemplate());
      // Records are never modified, so a handle's label is read once (and again after a recovery).
      const labelOf = new Map<string, string>();
      for (const [label, h] of this.recordHandles) labelOf.set(h.toString('hex'), label);
      const out: HsmRecordRef[] = [];
      const fresh = new Map<string, Handle>();
      let reads = 0;
      for (const h of handles) {
        let label = labelOf.get(h.toString('hex'));
        if (label === undefined) {
          try {
            label = (this.lib.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_LABEL }])[0]?.value as Buffer).toString('utf8');
          } catch (e) {
            // Deleted by another gateway between the find and the read.
            if (readDisposition(e) !== 'handle') throw e;
            continue;
          }
          // Let the thread answer its lane while a large token is read for the first time.
          if (++reads % 200 === 0) await new Promise((r) => setImmediate(r));
        }
        fresh.set(label, h);
        out.push({ ref: label, label });
      }
      this.recordHandles.clear();
      for (const [label, h] of fresh) this.recordHandles.set(label, h);
      return out;
    });
  }

  /** The record's handle on this instance: cached, or found by label (`refind` skips the cache). */
  private recordHandle(s: Handle, label: string, refind: boolean): Handle | undefined {
    if (!refind) {
      const h = this.recordHandles.get(label);
      if (h !== undefined) return h;
    }
    const hits = this.findAll(s, this.recordTemplate(label));
    const h = hits[0];
    if (h === undefined) this.recordHandles.delete(label);
    else this.recordHandles.set(label, h);
    return h;
  }

  /** Runs `op` on the record's handle; a stale cached handle is looked up again once. Undefined when the record is gone. */
  private onRecord<T>(s: Handle, label: string, op: (h: Handle) => T): T | undefined {
    for (const refind of [false, true]) {
      const h = this.recordHandle(s, label, refind);
      if (h === undefined) return undefined;
      try {
        return op(h);
      } catch (e) {
        // readDisposition: `op` reads the record's value, or destroys it (which never answers CKR_BUFFER_TOO_SMALL).
        if (readDisposition(e) !== 'handle') throw e;
      }
    }
    return undefined;
  }

  readRecord(ref: string): Promise<Buffer | undefined> {
    return this.records((s) => this.onRecord(s, ref, (h) => this.lib.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_VALUE }])[0]?.value as Buffer));
  }

  createRecord(label: string, value: Buffer): Promise<string> {
    return this.records((s) => {
      const template = this.recordTemplate(label);
      const h = createWithRetry(
        () => this.lib.C_CreateObject(s, [...template, { type: pkcs11js.CKA_PRIVATE, value: true }, { type: pkcs11js.CKA_MODIFIABLE, value: false }, { type: pkcs11js.CKA_VALUE, value }]),
        this.createRetryHooks(`record ${label}`, () => this.findAll(s, template).length > 0),
      );
      this.recordHandles.set(label, h);
      return label;
    });
  }

  deleteRecord(ref: string): Promise<void> {
    return this.records((s) => {
      this.onRecord(s, ref, (h) => this.lib.C_DestroyObject(s, h));
      this.recordHandles.delete(ref);
    });
  }

  /**
   * The state mark (Hsm.readStateMark): data objects of their own
   * application (the records' find never matches them), never changed in
   * place. A writer finds the current marks, creates a new one whose
   * CKA_LABEL is the value (hex) and destroys the ones it found; a reader
   * reads the labels of the marks it knows, and finds them again when one
   * of them is gone (CKR_OBJECT_HANDLE_INVALID): that is the change it
   * looks for. Changing one mark in place (C_SetAttributeValue on a
   * modifiable label) made SoftHSM2 2.6.1 answer the other processes'
   * writes CKR_OBJECT_HANDLE_INVALID and, now and then, their finds and key
   * generation CKR_GENERAL_ERROR (1 to 5 failed CreateKey in 995 made by 4
   * clients on a 2-worker gateway); creating and destroying objects from
   * several processes at once is what records always did, without errors.
   * Two writers at once leave two marks; the next writer destroys both.
   */
  private static readonly MARK_APPLICATION = 'kms-hsm-gateway/state-mark';
  private markHandles: Handle[] | undefined;

  private markTemplate(): Template {
    return [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_APPLICATION, value: Pkcs11Hsm.MARK_APPLICATION },
    ];
  }

  /**
   * Finds the state marks as the instance opens: a find is a pass over every
   * object on the token (~65 ms at 1,000 keys on SoftHSM2), which must not
   * stall a lane thread under load the first time a background refresh
   * round happens to read the mark on it.
   */
  private async findMarks(): Promise<void> {
    await this.pool.use(
      (s) => {
        this.markHandles = this.findAll(s, this.markTemplate());
      },
      () => true,
    );
  }

  private markLabels(s: Handle, handles: Handle[]): string[] {
    return handles.map((h) => (this.lib.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_LABEL }])[0]?.value as Buffer).toString('utf8'));
  }

  readStateMark(): Promise<Buffer | undefined> {
    return this.records((s) => {
      let labels: string[] | undefined;
      if (this.markHandles !== undefined && this.markHandles.length > 0) {
        try {
          labels = this.markLabels(s, this.markHandles);
        } catch (e) {
          // A mark destroyed by a writer: the state changed; find the current ones.
          if (readDisposition(e) !== 'handle') throw e;
        }
      }
      if (labels === undefined) {
        this.markHandles = this.findAll(s, this.markTemplate());
        if (this.markHandles.length === 0) return undefined;
        // A mark destroyed between the find and the read belongs to a writer that has already made its own.
        for (let attempt = 1; ; attempt++) {
          try {
            labels = this.markLabels(s, this.markHandles);
            break;
          } catch (e) {
            if (attempt >= 3 || readDisposition(e) !== 'handle') throw e;
            this.markHandles = this.findAll(s, this.markTemplate());
          }
        }
      }
      return Buffer.from(labels.sort().join(''), 'hex');
    });
  }

  writeStateMark(value: Buffer): Promise<void> {
    return this.records((s) => {
      const older = this.findAll(s, this.markTemplate());
      const created = this.lib.C_CreateObject(s, [
        ...this.markTemplate(),
        { type: pkcs11js.CKA_LABEL, value: value.toString('hex') },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_MODIFIABLE, value: false },
      ]);
      for (const h of older) {
        try {
          this.lib.C_DestroyObject(s, h);
        } catch {
          // Destroyed by another writer meanwhile (SoftHSM2 2.6.1 answers that
          // race with CKR_OBJECT_HANDLE_INVALID or CKR_GENERAL_ERROR). A mark
          // left behind by any other failure is destroyed by the next writer;
          // a reader that knew only that mark sees this change at its next
          // full refresh (state.fullRefreshMs).
        }
      }
      this.markHandles = [created];
    });
  }

  // ---- plumbing -------------------------------------------------------

  private gcm(iv: Buffer, aad: Buffer): pkcs11js.Mechanism {
    return {
      mechanism: pkcs11js.CKM_AES_GCM,
      parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: iv.length * 8, aad, tagBits: 128 } as pkcs11js.GcmParams,
    };
  }

  private entry(name: string): KeyEntry {
    const e = this.keys.get(name);
    if (e === undefined) throw new KMSInternalException(`key material '${name}' was never prepared`);
    return e;
  }

  /** Whether a failure leaves the session unusable. Gateway-side errors (KmsError) never do. */
  private discards(err: unknown, decrypting: boolean): boolean {
    if (err instanceof KmsError) return false;
    return disposition(err, decrypting) !== 'data';
  }

  /**
   * Runs one operation on a pooled session with the key's cached handle.
   * A stale handle is looked up again once; an operation left active on a
   * reused session (CKR_OPERATION_ACTIVE) is retried once on a fresh one.
   */
  private async run<T>(
    name: string,
    kind: ObjectKind,
    decrypting: boolean,
    op: (session: Handle, key: Handle) => Promise<T>,
  ): Promise<T> {
    const entry = this.entry(name);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.pool.use(
          (s) => {
            const key = this.keyHandle(s, entry, kind);
            if (key === undefined) throw new KeyUnavailableException(`${entry.req.displayName} is unavailable.`);
            return op(s, key);
          },
          (e) => this.discards(e, decrypting),
        );
      } catch (e) {
        if (e instanceof KmsError) throw e;
        const d = disposition(e, decrypting);
        if (attempt === 0 && d === 'handle') {
          // The copy or the token object is gone: find the token object again (and copy it again).
          this.dropCopies(entry);
          delete entry[kind];
          continue;
        }
        if (attempt === 0 && ckrCode(e) === CKR.OPERATION_ACTIVE) continue;
        throw this.translate(e, d, entry.req.displayName);
      }
    }
  }

  /** The handle an operation uses: the key's session copy with sessionKeyCopies (made now if needed), else its token object. */
  private keyHandle(s: Handle, entry: KeyEntry, kind: ObjectKind): Handle | undefined {
    if (this.opts.sessionKeyCopies !== true || entry.uncopyable === true) return entry[kind] ?? this.find(s, entry, kind);
    const copy = entry.copies?.[kind];
    if (copy !== undefined) return copy;
    const token = entry[kind] ?? this.find(s, entry, kind);
    if (token === undefined) return undefined;
    let made: Handle;
    try {
      // In the long-lived login session: pool sessions may be discarded after a fault, the login session lives until a recovery.
      made = this.lib.C_CopyObject(this.loginSession, token, [{ type: pkcs11js.CKA_TOKEN, value: false }]);
    } catch (e) {
      if (!isCopyRefused(e)) throw e;
      this.opts.log.warn({ key: entry.req.displayName, ckr: ckrName(ckrCode(e) ?? -1) }, 'the token refused a session copy of the key; using its token object');
      entry.uncopyable = true;
      return token;
    }
    (entry.copies ??= {})[kind] = made;
    return made;
  }

  private translate(err: unknown, d: ReturnType<typeof disposition>, what: string): KmsError {
    if (err instanceof KmsError) return err;
    const code = ckrCode(err);
    if (d === 'data') return new InvalidCiphertextException();
    const ckr = code === undefined ? String(err) : ckrName(code);
    if (d === 'bug') {
      this.opts.log.error({ ckr, key: what }, 'PKCS#11 call rejected by the token');
      return new KMSInternalException();
    }
    this.opts.log.warn({ ckr, key: what, disposition: d }, 'key unavailable on the token');
    // 'handle' here means the key's object is gone from the token (looked up again, not found): that key only.
    return new KeyUnavailableException(`${what} is unavailable.`, { tokenFault: d === 'session' || d === 'token' });
  }
}
